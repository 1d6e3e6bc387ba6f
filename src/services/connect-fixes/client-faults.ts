/**
 * A request the agent cannot decode is the client's fault, so it must be refused with
 * `invalid_argument`. connect-es 2.1 reports three such requests as `internal` instead, which
 * tells the client "the server broke" and is what monitoring pages people for:
 *   - a binary message that does not parse ("parse binary: …", serialization.js),
 *   - a frame flagged compressed on a request that named no encoding (envelope.js),
 *   - a compressed body zlib cannot inflate, e.g. cut short ("decompression failed", compression.js).
 *
 * Why here, on the response, rather than somewhere earlier: connect-es raises these errors inside its
 * protocol handlers, and for unary RPCs it parses the request before the interceptor chain runs, so
 * an interceptor never sees them; its serialization takes no reader or error hook (`binaryOptions`
 * only toggles unknown fields), and it offers no hook over how an error becomes a response. The one
 * place every protocol and RPC kind passes through is the universal handler's response, where the
 * error is still tagged with its code and message in one of three documented shapes: a Connect unary
 * error body, a Connect end-of-stream frame, or the gRPC status (trailers for gRPC, a trailer frame
 * for gRPC-web). Only those three errors are reclassified, by their exact messages; every other
 * `internal` still means what it says. test/integration/fuzz/connect-malformed.test.ts fails if an upgrade of
 * connect-es changes the messages.
 *
 * Upstream: connect-go weighed the same question (connectrpc/connect-go#595: what a mangled payload
 * should be answered with); no connect-es report existed: docs/upstream/connect-es.md ("client faults").
 */
import { Code } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { mapBody, type HandlerWrap } from "./handler-wrap.js";

const CLIENT_FAULT = /^(?:parse binary: |received compressed envelope, but do not know how to decompress$|decompression failed$)/;

const INTERNAL = "internal";
const INVALID_ARGUMENT = "invalid_argument";
const GRPC_INTERNAL = String(Code.Internal);
const GRPC_INVALID_ARGUMENT = String(Code.InvalidArgument);
/** Frame flags: Connect's end of stream, gRPC-web's trailers, and compression (left untouched). */
const END_STREAM_FLAG = 0x02;
const TRAILER_FLAG = 0x80;
const COMPRESSED_FLAG = 0x01;

/** Wraps a handler so that its answers to malformed requests carry `invalid_argument`. */
export const blameClientForMalformedRequests: HandlerWrap = (next) => async (req) => reclassify(await next(req));

async function reclassify(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const type = res.header?.get("content-type") ?? "";
  if (res.body === undefined) return res;
  if (type.startsWith("application/grpc-web")) return { ...res, body: mapFinalFrame(res.body, TRAILER_FLAG, grpcWebTrailer) };
  if (type.startsWith("application/grpc")) return { ...res, body: fixTrailerAfter(res.body, res.trailer) };
  if (type.startsWith("application/connect+")) return { ...res, body: mapFinalFrame(res.body, END_STREAM_FLAG, connectEndStream) };
  // A Connect unary error: `internal` is HTTP 500 with a JSON body; successes are 200.
  if (res.status === 500 && type.startsWith("application/json")) return connectUnaryError(res, res.body);
  return res;
}

async function connectUnaryError(res: UniversalServerResponse, body: AsyncIterable<Uint8Array>): Promise<UniversalServerResponse> {
  const bytes = await readAll(body);
  const rewritten = rewriteJsonError(bytes, (json) => json);
  if (rewritten === undefined) return { ...res, body: once(bytes) };
  const header = new Headers(res.header);
  header.set("content-length", String(rewritten.byteLength));
  return { ...res, status: 400, header, body: once(rewritten) };
}

/** The end-of-stream frame's JSON holds the error under `error`. */
function connectEndStream(payload: Uint8Array): Uint8Array | undefined {
  return rewriteJsonError(payload, (json) => json.error);
}

/** Reparses a Connect error JSON and returns it re-encoded with the client's code, or undefined. */
function rewriteJsonError(bytes: Uint8Array, errorOf: (json: Record<string, unknown>) => unknown): Uint8Array | undefined {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null) return undefined;
  const error = errorOf(json as Record<string, unknown>);
  if (typeof error !== "object" || error === null) return undefined;
  const fields = error as Record<string, unknown>;
  if (fields.code !== INTERNAL || typeof fields.message !== "string" || !CLIENT_FAULT.test(fields.message)) return undefined;
  fields.code = INVALID_ARGUMENT;
  return new TextEncoder().encode(JSON.stringify(json));
}

/** gRPC-web trailers travel as `name: value` lines in the last frame. */
function grpcWebTrailer(payload: Uint8Array): Uint8Array | undefined {
  const lines = new TextDecoder().decode(payload).split("\r\n");
  const headerValue = (name: string): string | undefined =>
    lines
      .find((line) => line.toLowerCase().startsWith(`${name}:`))
      ?.slice(name.length + 1)
      .trim();
  if (headerValue("grpc-status") !== GRPC_INTERNAL || !CLIENT_FAULT.test(percentDecoded(headerValue("grpc-message") ?? ""))) return undefined;
  const fixed = lines.map((line) => (line.toLowerCase().startsWith("grpc-status:") ? `grpc-status: ${GRPC_INVALID_ARGUMENT}` : line));
  return new TextEncoder().encode(fixed.join("\r\n"));
}

/** gRPC's status is in the trailers, final once the body has been read to its end. */
function fixTrailerAfter(body: AsyncIterable<Uint8Array>, trailer: Headers | undefined): AsyncIterable<Uint8Array> {
  return mapBody(
    body,
    (chunk) => chunk,
    () => {
      if (trailer?.get("grpc-status") === GRPC_INTERNAL && CLIENT_FAULT.test(percentDecoded(trailer.get("grpc-message") ?? ""))) {
        trailer.set("grpc-status", GRPC_INVALID_ARGUMENT);
      }
    },
  );
}

/**
 * Passes frames through, rewriting the one flagged `flag`. connect-es yields each frame of a
 * response as its own chunk; a chunk that is not exactly one frame is passed through untouched.
 */
function mapFinalFrame(body: AsyncIterable<Uint8Array>, flag: number, rewrite: (payload: Uint8Array) => Uint8Array | undefined): AsyncIterable<Uint8Array> {
  return mapBody(body, (chunk) => {
    const flags = chunk[0] ?? 0;
    // Output frames, the bulk of a stream, are passed over on their flag byte alone.
    if (!(flags & flag) || flags & COMPRESSED_FLAG || chunk.byteLength < 5) return chunk;
    const isOneFrame = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1) === chunk.byteLength - 5;
    const payload = isOneFrame ? rewrite(chunk.subarray(5)) : undefined;
    return payload === undefined ? chunk : frame(flags, payload);
  });
}

function frame(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.byteLength);
  out.set(payload, 5);
  return out;
}

function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
