/**
 * How the agent reads the text of a JSON request message: as UTF-8, refusing up front JSON nested
 * deeper than any message of the API can be, and, with an error message that is itself
 * well-formed text, any request that would make connect-es end a gRPC or gRPC-web call with no
 * status at all.
 *
 * Nesting: V8's JSON.parse spends memory and time on every level before protobuf-es can refuse
 * the value. 15 MB of `[` took the agent from 330 MB to 1.1 GB and blocked its event loop for
 * 2.3 s (found by the fuzz campaign); 64 MiB, the size a message may have, would take gigabytes, in
 * a sandbox whose memory is the user's. The API has no google.protobuf.Struct or Value, so its
 * deepest request is a few levels; one linear scan refuses anything past MAX_JSON_DEPTH.
 *
 * gRPC and gRPC-web carry error messages percent-encoded, and encodeURIComponent throws on an
 * unpaired UTF-16 surrogate: connect-es then ends the call with no status (HTTP/2: an empty 200;
 * HTTP/1.1: no answer). Two kinds of JSON request put one in an error message:
 *   - a string (key or value) holding an unpaired surrogate escape such as "\ud800", sitting where
 *     another type belongs (`{"process": "\ud800"}`): protobuf-es quotes the value as it is;
 *   - JSON that does not parse and holds characters outside the BMP: V8's message quotes an
 *     excerpt of the text cut by UTF-16 units, which may split a surrogate pair.
 * Both are refused here, where connect-es decodes every JSON request message (all protocols,
 * unary and streaming, before any interceptor). Only text with a surrogate in it, as an escape or
 * as a character, is parsed here as well: the rest cannot produce either.
 *
 * connect-es takes the decoder as `jsonOptions.textDecoder` (its JsonSerializationOptions).
 *
 * Upstream: no connect-es report existed: docs/upstream/connect-es.md ("JSON depth", "surrogates").
 */
import { Code, ConnectError } from "@connectrpc/connect";

const utf8 = new TextDecoder();
/** A \u escape in the surrogate range, or a surrogate (half of a character outside the BMP). */
const MAY_HOLD_SURROGATES = /\\u[dD][89a-fA-F]|[\uD800-\uDFFF]/;
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UNPAIRED_SURROGATES = new RegExp(UNPAIRED_SURROGATE.source, "g");

/** Objects and arrays inside each other: far more than any request message of the API needs. */
export const MAX_JSON_DEPTH = 64;

export const jsonRequestDecoder = {
  decode(input?: Uint8Array): string {
    const text = utf8.decode(input);
    if (nestingExceeds(text, MAX_JSON_DEPTH)) {
      throw new ConnectError(`invalid JSON: objects and arrays nested more than ${MAX_JSON_DEPTH} deep`, Code.InvalidArgument);
    }
    if (MAY_HOLD_SURROGATES.test(text)) refuseUnencodable(text);
    return text;
  },
};

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Whether brackets outside strings open deeper than `max`; malformed text is the parser's to refuse. */
function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

function refuseUnencodable(text: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    // The same refusal protobuf-es would give, with the excerpt's split characters replaced.
    const message = e instanceof Error ? e.message : String(e);
    throw new ConnectError(`cannot decode message from JSON: ${message.replace(UNPAIRED_SURROGATES, "\uFFFD")}`, Code.InvalidArgument);
  }
  if (holdsUnpairedSurrogate(parsed)) {
    throw new ConnectError(
      "invalid JSON: a string holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF), which is not Unicode text",
      Code.InvalidArgument,
    );
  }
}

function holdsUnpairedSurrogate(parsed: unknown): boolean {
  const stack: unknown[] = [parsed];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === "string") {
      if (UNPAIRED_SURROGATE.test(value)) return true;
    } else if (Array.isArray(value)) {
      stack.push(...value);
    } else if (typeof value === "object" && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        if (UNPAIRED_SURROGATE.test(key)) return true;
        stack.push(item);
      }
    }
  }
  return false;
}
