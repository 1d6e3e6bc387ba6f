/**
 * A gRPC status message must fit in the trailers a client accepts. gRPC carries it percent-encoded
 * in an HTTP/2 trailer, and clients cap header lists (grpc-java at 8 KiB; Node refuses a trailer
 * block that does not fit its frame limits and resets the stream), while errors quote what the
 * client sent: a 200 KiB context id made `context "…" not found` a 600 KiB trailer, and the client
 * saw a reset stream instead of `not_found`. Messages are cut to MAX_ENCODED_BYTES, whole
 * characters, with a note that they were cut. gRPC-web and Connect carry messages in the body and
 * keep them whole.
 *
 * Upstream: no connect-es report existed: docs/upstream/connect-es.md ("grpc-message size").
 */
import { mapBody, type HandlerWrap } from "./handler-wrap.js";

/** Encoded length of a grpc-message trailer, well under common 8 KiB header-list limits. */
export const MAX_ENCODED_BYTES = 2048;
const CUT_NOTE = " … (message truncated)";

export const boundGrpcMessages: HandlerWrap = (next) => async (req) => {
  const res = await next(req);
  const type = res.header?.get("content-type") ?? "";
  const trailer = res.trailer;
  if (res.body === undefined || trailer === undefined || !type.startsWith("application/grpc") || type.startsWith("application/grpc-web")) return res;
  return {
    ...res,
    body: mapBody(
      res.body,
      (chunk) => chunk,
      () => {
        const message = trailer.get("grpc-message");
        if (message !== null && message.length > MAX_ENCODED_BYTES) trailer.set("grpc-message", shortened(message));
      },
    ),
  };
};

/** The percent-encoded message cut at a character boundary so that it fits, note included. */
function shortened(encoded: string): string {
  let characters: string[];
  try {
    characters = Array.from(decodeURIComponent(encoded));
  } catch {
    return encodeURIComponent(CUT_NOTE.trim());
  }
  const budget = MAX_ENCODED_BYTES - encodeURIComponent(CUT_NOTE).length;
  let kept = "";
  let size = 0;
  for (const character of characters) {
    const width = encodeURIComponent(character).length;
    if (size + width > budget) break;
    kept += character;
    size += width;
  }
  return encodeURIComponent(kept + CUT_NOTE);
}
