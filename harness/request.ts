/**
 * One hostile request and what became of it. Property tests, the fuzz campaign and the soak all
 * send through here, so "the agent misbehaved" means the same thing everywhere: an HTTP 5xx that
 * is not a Connect error, a Connect/gRPC code that only a server bug produces, or no answer.
 *
 * HTTP/1.1 requests are written as raw bytes on a socket so that a generator can say anything a
 * hostile client could (bad request lines, lying lengths, bodies cut off); HTTP/2 requests go
 * through node:http2, because an h2 frame layer is not what is being fuzzed.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as h2Connect, constants as h2 } from "node:http2";

export interface RequestSpec {
  /** Family of input, for the report ("range", "multipart", "envelope", …). */
  readonly family: string;
  readonly transport: "http1" | "h2";
  readonly method: string;
  /** The request target as sent, path and query (may hold anything a raw client could send). */
  readonly target: string;
  readonly headers: readonly (readonly [string, string])[];
  /** Body chunks, written in order. */
  readonly body?: readonly Uint8Array[];
  /** http1 only: the bytes to write instead of a serialised request (request-line fuzzing). */
  readonly raw?: Uint8Array;
  /** Stop writing after this many body bytes and half-close: a client cut off mid-body. */
  readonly cutAfter?: number;
  /** A stream that may legitimately stay open (a watcher, `cat`): hitting the timeout is no fault. */
  readonly mayStayOpen?: boolean;
  /**
   * After `body`, this many more bytes, never built in memory: as fast as the transport takes
   * them, or one byte every `trickleMs`. Sending stops as soon as the answer begins, which for a
   * request the agent refuses from its headers is long before the body is through.
   */
  readonly flood?: { readonly bytes: number; readonly trickleMs?: number };
}

const FLOOD_CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** Writes a flood to `sink` until `answered()` or the bytes run out; returns a stop function. */
function pumpFlood(
  sink: { write(chunk: Buffer): boolean; once(event: "drain", listener: () => void): unknown; readonly destroyed: boolean },
  flood: NonNullable<RequestSpec["flood"]>,
  answered: () => boolean,
): () => void {
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const pump = (): void => {
    while (!stopped && !answered() && !sink.destroyed && sent < flood.bytes) {
      const piece = flood.trickleMs === undefined ? FLOOD_CHUNK.subarray(0, Math.min(FLOOD_CHUNK.length, flood.bytes - sent)) : FLOOD_CHUNK.subarray(0, 1);
      sent += piece.length;
      if (!sink.write(piece)) {
        sink.once("drain", pump);
        return;
      }
      if (flood.trickleMs !== undefined) {
        timer = setTimeout(pump, flood.trickleMs);
        return;
      }
    }
  };
  pump();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export interface Outcome {
  /** HTTP status, or 0 when the connection ended without a response head. */
  readonly status: number;
  /** Connect/gRPC error code name carried by the response, if any ("invalid_argument", …). */
  readonly code?: string;
  readonly closedWithoutResponse?: boolean;
  readonly timedOut?: boolean;
  /** A gRPC, gRPC-web or Connect-streaming response that ended without its status (trailers, end frame). */
  readonly missingStatus?: boolean;
  readonly ms: number;
  /** First bytes of the body, for reports. */
  readonly excerpt: string;
}

/** Codes that only a server defect produces; anything else is a legitimate refusal. */
const FAULT_CODES = new Set(["internal", "unknown", "data_loss"]);

/** Why this outcome shows an agent defect, or undefined when it is an acceptable answer. */
export function faultOf(spec: RequestSpec, outcome: Outcome): string | undefined {
  if (outcome.timedOut && !spec.mayStayOpen) return "no answer before the timeout";
  // A request the generator made without credentials must not be let in (gRPC refuses with 200 and status 16).
  const refusalExpected = spec.headers.some(([name, value]) => name === "x-fuzz-expect" && value === "unauthorised");
  if (refusalExpected && spec.flood !== undefined && outcome.status >= 200 && outcome.status < 400 && outcome.code !== "unauthenticated") {
    return "let in without credentials";
  }
  if (outcome.code !== undefined && FAULT_CODES.has(outcome.code)) return `Connect code ${outcome.code}`;
  // Clients report a call that ends without its status as a server error; a client that cut its
  // own request short may not get one.
  if (outcome.missingStatus && !outcome.timedOut && spec.cutAfter === undefined) return "the response ended without a status";
  // A Connect error keeps its own HTTP mapping (unimplemented→501, unavailable→503), judged by code above.
  if (outcome.status >= 500 && outcome.code === undefined) return `HTTP ${outcome.status}`;
  return undefined;
}

/** A request for a report: the body in base64 (it may be any bytes), long parts cut, no token. */
export function describeSpec(spec: RequestSpec): string {
  const body = Buffer.concat((spec.raw ? [spec.raw] : (spec.body ?? [])).map((c) => Buffer.from(c)));
  const shown = body.length > 512 ? `${body.subarray(0, 512).toString("base64")}… (${body.length} bytes)` : body.toString("base64");
  const headers = spec.headers.filter(([name]) => name !== "x-access-token").map(([name, value]) => [name, value.slice(0, 200)]);
  return JSON.stringify({
    family: spec.family,
    transport: spec.transport,
    method: spec.method,
    target: spec.target.slice(0, 300),
    headers,
    body: shown,
    cutAfter: spec.cutAfter,
  });
}

/** An answer for a report. */
export function describeOutcome(outcome: Outcome): string {
  const flags = [outcome.timedOut ? "timed out" : "", outcome.closedWithoutResponse ? "closed" : "", outcome.missingStatus ? "no status" : ""].filter(Boolean);
  return `${outcome.status} ${outcome.code ?? "-"}${flags.length > 0 ? ` (${flags.join(", ")})` : ""} ${JSON.stringify(outcome.excerpt.slice(0, 200))}`;
}

const GRPC_CODES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
] as const;

const MAX_KEEP = 1 << 20;

export interface SendOptions {
  readonly timeoutMs?: number;
  /** Sends on an existing h2 session instead of opening one per request. */
  readonly h2Session?: import("node:http2").ClientHttp2Session;
}

export async function send(baseUrl: string, spec: RequestSpec, options: SendOptions = {}): Promise<Outcome> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return spec.transport === "h2" ? sendH2(baseUrl, spec, timeoutMs, options.h2Session) : sendHttp1(baseUrl, spec, timeoutMs);
}

function serialise(url: URL, spec: RequestSpec): Buffer {
  if (spec.raw) return Buffer.from(spec.raw);
  const body = Buffer.concat((spec.body ?? []).map((c) => Buffer.from(c)));
  const names = new Set(spec.headers.map(([n]) => n.toLowerCase()));
  const lines = [`${spec.method} ${spec.target} HTTP/1.1`];
  if (!names.has("host")) lines.push(`host: ${url.host}`);
  for (const [name, value] of spec.headers) lines.push(`${name}: ${value}`);
  if (!names.has("content-length") && !names.has("transfer-encoding") && (body.length > 0 || spec.method === "POST" || spec.flood)) {
    lines.push(`content-length: ${body.length + (spec.flood?.bytes ?? 0)}`);
  }
  lines.push("connection: close", "", "");
  const head = Buffer.from(lines.join("\r\n"), "latin1");
  const payload = spec.cutAfter === undefined ? body : body.subarray(0, spec.cutAfter);
  return Buffer.concat([head, payload]);
}

function sendHttp1(baseUrl: string, spec: RequestSpec, timeoutMs: number): Promise<Outcome> {
  const url = new URL(baseUrl);
  const started = performance.now();
  return new Promise((resolve) => {
    const socket: Socket = tcpConnect({ host: url.hostname, port: Number(url.port) });
    const chunks: Buffer[] = [];
    let kept = 0;
    let done = false;
    let stopFlood = (): void => undefined;
    const finish = (extra: Partial<Outcome>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stopFlood();
      socket.destroy();
      const response = Buffer.concat(chunks);
      resolve({ ...parseHttp1(response, kept < MAX_KEEP, requestContentType(spec)), ms: performance.now() - started, ...extra });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), timeoutMs);
    socket.on("connect", () => {
      socket.write(serialise(url, spec));
      if (spec.cutAfter !== undefined) socket.end();
      else if (spec.flood !== undefined) stopFlood = pumpFlood(socket, spec.flood, () => done || kept > 0);
    });
    socket.on("data", (chunk: Buffer) => {
      if (kept < MAX_KEEP) {
        chunks.push(chunk);
        kept += chunk.length;
      }
    });
    socket.on("end", () => finish({}));
    socket.on("close", () => finish({}));
    socket.on("error", () => finish({}));
  });
}

/** Status line, Connect/gRPC-web error code and an excerpt out of a raw HTTP/1.1 response. */
function parseHttp1(response: Buffer, complete: boolean, requestType: string): Omit<Outcome, "ms"> {
  const headEnd = response.indexOf("\r\n\r\n");
  if (headEnd < 0) return { status: 0, closedWithoutResponse: true, excerpt: response.subarray(0, 200).toString("latin1") };
  const head = response.subarray(0, headEnd).toString("latin1");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  const headers = new Map<string, string>();
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = response.subarray(headEnd + 4);
  if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") body = dechunk(body, headers);
  const code = codeOf(headers.get("content-type") ?? "", body, headers);
  const missingStatus = complete && statusMissing(headers.get("content-type") ?? (status === 200 ? requestType : ""), body, headers);
  return { status, ...(code === undefined ? {} : { code }), ...(missingStatus ? { missingStatus } : {}), excerpt: body.subarray(0, 200).toString("utf8") };
}

/** A 200 without a content type answers the protocol the request asked for. */
function requestContentType(spec: RequestSpec): string {
  return spec.headers.find(([name]) => name.toLowerCase() === "content-type")?.[1].toLowerCase() ?? "";
}

/** Whether a gRPC, gRPC-web or Connect-streaming response lacks the status it must end with. */
function statusMissing(contentType: string, body: Buffer, headers: ReadonlyMap<string, string>): boolean {
  if (headers.has("grpc-status")) return false;
  const endFlag = contentType.startsWith("application/grpc-web") ? 0x80 : contentType.startsWith("application/connect+") ? 0x02 : undefined;
  if (endFlag === undefined) return contentType.startsWith("application/grpc");
  for (let at = 0; at + 5 <= body.length; at += 5 + body.readUInt32BE(at + 1)) {
    if (body[at]! & endFlag) return false;
  }
  return true;
}

/** The chunked body's data; trailers after the last chunk (gRPC over HTTP/1.1) go into `headers`. */
function dechunk(body: Buffer, headers: Map<string, string>): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    const lineEnd = body.indexOf("\r\n", at);
    if (lineEnd < 0) break;
    const size = parseInt(body.subarray(at, lineEnd).toString("latin1"), 16);
    if (size === 0) {
      for (const line of body
        .subarray(lineEnd + 2)
        .toString("latin1")
        .split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
    if (!Number.isFinite(size) || size === 0) break;
    out.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** The error code a Connect unary/stream, gRPC-web or gRPC response carries. */
function codeOf(contentType: string, body: Buffer, headers: ReadonlyMap<string, string>): string | undefined {
  const grpcStatus = headers.get("grpc-status");
  if (grpcStatus !== undefined) return GRPC_CODES[Number(grpcStatus)] ?? "unknown";
  if (contentType.startsWith("application/json")) return jsonCode(body);
  if (contentType.startsWith("application/connect+") || contentType.startsWith("application/grpc-web")) {
    // Walk the envelopes to the end-of-stream one (flag 0x02 Connect, 0x80 gRPC-web trailers).
    let at = 0;
    while (at + 5 <= body.length) {
      const flags = body[at]!;
      const length = body.readUInt32BE(at + 1);
      const payload = body.subarray(at + 5, at + 5 + length);
      if (flags & 0x02 && contentType.startsWith("application/connect+")) return jsonCode(payload);
      if (flags & 0x80) {
        const match = /grpc-status:\s*(\d+)/i.exec(payload.toString("latin1"));
        return match ? (GRPC_CODES[Number(match[1])] ?? "unknown") : undefined;
      }
      at += 5 + length;
    }
  }
  return undefined;
}

function jsonCode(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { code?: unknown; error?: { code?: unknown } };
    const code = parsed.error?.code ?? parsed.code;
    return typeof code === "string" && code !== "ok" ? code : undefined;
  } catch {
    return undefined;
  }
}

function sendH2(baseUrl: string, spec: RequestSpec, timeoutMs: number, shared?: import("node:http2").ClientHttp2Session): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const session = shared ?? h2Connect(baseUrl);
    const own = shared === undefined;
    session.on("error", () => finish({ status: 0, closedWithoutResponse: true }));
    let status = 0;
    const headers = new Map<string, string>();
    const chunks: Buffer[] = [];
    let kept = 0;
    let done = false;
    const finish = (extra: Partial<Outcome>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!stream.destroyed) stream.close(h2.NGHTTP2_CANCEL);
      if (own) session.close();
      const body = Buffer.concat(chunks);
      const code = codeOf(headers.get("content-type") ?? "", body, headers);
      const type = headers.get("content-type") ?? (status === 200 ? requestContentType(spec) : "");
      const missingStatus = status !== 0 && kept < MAX_KEEP && !extra.timedOut && statusMissing(type, body, headers);
      resolve({
        status,
        ...(code === undefined ? {} : { code }),
        ...(missingStatus ? { missingStatus } : {}),
        excerpt: body.subarray(0, 200).toString("utf8"),
        ms: performance.now() - started,
        ...extra,
      });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), timeoutMs);
    const requestHeaders: Record<string, string> = { ":method": spec.method, ":path": spec.target };
    for (const [name, value] of spec.headers) requestHeaders[name.toLowerCase()] = value;
    let stream: import("node:http2").ClientHttp2Stream;
    try {
      stream = session.request(requestHeaders, { endStream: false });
    } catch (error) {
      // node:http2 refuses some headers client-side; that is not the agent's answer. (`done`
      // keeps the session's later events away from `finish`, which has no stream to close.)
      done = true;
      clearTimeout(timer);
      if (own) session.close();
      resolve({ status: 0, closedWithoutResponse: true, excerpt: `client refused: ${(error as Error).message}`, ms: 0 });
      return;
    }
    stream.on("response", (h) => {
      status = Number(h[":status"] ?? 0);
      for (const [k, v] of Object.entries(h)) if (typeof v === "string") headers.set(k, v);
    });
    stream.on("trailers", (t) => {
      for (const [k, v] of Object.entries(t)) if (typeof v === "string") headers.set(k, v);
    });
    stream.on("data", (chunk: Buffer) => {
      if (kept < MAX_KEEP) {
        chunks.push(chunk);
        kept += chunk.length;
      }
    });
    stream.on("end", () => finish({}));
    stream.on("close", () => finish(status === 0 ? { closedWithoutResponse: true } : {}));
    stream.on("error", () => finish(status === 0 ? { closedWithoutResponse: true } : {}));
    const body = Buffer.concat((spec.body ?? []).map((c) => Buffer.from(c)));
    if (spec.flood === undefined) {
      stream.end(spec.cutAfter === undefined ? body : body.subarray(0, spec.cutAfter));
      return;
    }
    stream.write(body);
    const stop = pumpFlood(stream, spec.flood, () => done || status !== 0);
    stream.once("response", () => {
      stop();
      if (!stream.destroyed) stream.end();
    });
  });
}
