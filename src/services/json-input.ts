/**
 * How the agent reads the text of a JSON request message: as UTF-8, refusing up front any JSON
 * string (key or value) that holds an unpaired UTF-16 surrogate escape such as "\ud800".
 *
 * Such a string is no Unicode text, and protobuf-es refuses it in a string field anyway ("invalid
 * UTF8"). But when it sits where another type belongs (`{"process": "\ud800"}`), protobuf-es's
 * error message quotes it as it is, and gRPC and gRPC-web carry error messages percent-encoded:
 * encodeURIComponent throws on a lone surrogate, and connect-es then ends the call with no status
 * at all (HTTP/2: an empty 200; HTTP/1.1: no answer). Refusing the text here, where connect-es
 * decodes every JSON request message (all protocols, unary and streaming, before any interceptor),
 * keeps such strings out of every error message.
 *
 * connect-es takes the decoder as `jsonOptions.textDecoder` (its JsonSerializationOptions).
 */
import { Code, ConnectError } from "@connectrpc/connect";

const utf8 = new TextDecoder();
/** A \u escape in the surrogate range: only then can parsed JSON hold an unpaired surrogate. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const jsonRequestDecoder = {
  decode(input?: Uint8Array): string {
    const text = utf8.decode(input);
    if (SURROGATE_ESCAPE.test(text) && holdsUnpairedSurrogate(text)) {
      throw new ConnectError("invalid JSON: a string holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF), which is not Unicode text", Code.InvalidArgument);
    }
    return text;
  },
};

function holdsUnpairedSurrogate(text: string): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return false; // not JSON: the parser's own error quotes the text, which decoding left well-formed
  }
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
