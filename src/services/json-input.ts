/**
 * How the agent reads the text of a JSON request message: as UTF-8, refusing up front, with an
 * error message that is itself well-formed text, any request that would make connect-es end a
 * gRPC or gRPC-web call with no status at all.
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
 */
import { Code, ConnectError } from "@connectrpc/connect";

const utf8 = new TextDecoder();
/** A \u escape in the surrogate range, or a surrogate (half of a character outside the BMP). */
const MAY_HOLD_SURROGATES = /\\u[dD][89a-fA-F]|[\uD800-\uDFFF]/;
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UNPAIRED_SURROGATES = new RegExp(UNPAIRED_SURROGATE.source, "g");

export const jsonRequestDecoder = {
  decode(input?: Uint8Array): string {
    const text = utf8.decode(input);
    if (MAY_HOLD_SURROGATES.test(text)) refuseUnencodable(text);
    return text;
  },
};

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
    throw new ConnectError("invalid JSON: a string holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF), which is not Unicode text", Code.InvalidArgument);
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
