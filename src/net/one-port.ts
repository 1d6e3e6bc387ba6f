/**
 * One TCP port for every protocol. Each new connection is sniffed by its first bytes and handed to
 * the server that speaks it: a TLS ClientHello (0x16) to a TLS server that offers h2 and http/1.1 by
 * ALPN, the HTTP/2 connection preface ("PRI * HTTP/2.0") to a cleartext HTTP/2 server, anything else
 * to an HTTP/1.1 server. All of them share one request handler.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

export type RequestHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface OnePortOptions {
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** Connections open at once; the next ones are refused (closed at once). */
  readonly maxConnections: number;
  /** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly h2MaxStreams: number;
  /** An HTTP/2 connection with no stream open for this long is closed. */
  readonly h2IdleMs: number;
}

/**
 * HTTP/2 receive windows. The protocol's default (64 KiB for each stream and for the connection)
 * lets a client send one window, then wait a round trip for our WINDOW_UPDATE: uploads and stdin
 * over HTTP/2 crawled at a fraction of HTTP/1.1. Node grants window only as handlers read, so a
 * window is also the most one stream (or one connection) can make us buffer unread: bounded
 * with maxConnections, 1024 × 4 MiB at most.
 */
const H2_STREAM_WINDOW_BYTES = 1024 * 1024;
const H2_SESSION_WINDOW_BYTES = 4 * 1024 * 1024;

/** How long a new connection may stay silent before it is dropped (slowloris guard). */
const FIRST_BYTE_TIMEOUT_MS = 30_000;

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const TLS_HANDSHAKE = 0x16;

type Kind = "tls" | "h2c" | "http1" | "undecided";

/** Decides the protocol from the bytes seen so far; "undecided" while they are a prefix of the preface. */
export function sniff(bytes: Buffer): Kind {
  if (bytes.length === 0) return "undecided";
  if (bytes[0] === TLS_HANDSHAKE) return "tls";
  const n = Math.min(bytes.length, H2_PREFACE.length);
  if (bytes.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return n === H2_PREFACE.length ? "h2c" : "undecided";
  return "http1";
}

/**
 * HTTP/2 lets a request's stream go only once its body has been read to the end, even after the
 * answer is complete or the client has reset it: Node defers destroying the stream until then, and
 * reads the rest itself only for a request nobody began to read. A handler that answers before
 * reading the whole body (a malformed RPC, a refused upload), or that stops reading when the
 * client resets the call, would hold its stream open for good, and with it the session and its
 * socket, left in CLOSE_WAIT once the client goes: one descriptor lost per such request (found by
 * the fuzz campaign). So once the answer is out, RST_STREAM NO_ERROR tells a client still sending
 * to stop (RFC 9113 §8.1), and whatever of the body arrived is read and dropped.
 */
function releaseStreamWithAnswer(req: http2.Http2ServerRequest): void {
  const { stream } = req;
  const dropRest = (): void => {
    if (stream.destroyed || stream.readableEnded) return;
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    // From the stream itself, with read(): the request object may be destroyed or held in paused
    // mode by a handler's abandoned async iterator, and then nothing would pull from the stream.
    const discard = (): void => {
      while (stream.read() !== null);
    };
    stream.on("readable", discard);
    discard();
  };
  // Compat answers always end with trailers (maybe none): 'wantTrailers' follows the last of the
  // answer's data, and the compat layer's own listener submits them. Closing inside
  // 'wantTrailers' would lose the END_STREAM that follows the trailers: act on the next turn.
  stream.once("wantTrailers", () => setImmediate(dropRest));
  stream.once("aborted", dropRest);
}

export interface OnePortServer extends net.Server {
  /** Destroys every open connection (fastify calls this on close when forceCloseConnections is set). */
  closeAllConnections(): void;
  /** Closes connections with no request in flight. */
  closeIdleConnections(): void;
}

/**
 * Closes an HTTP/2 session once it has had no stream open for `idleMs`: a client that opens a
 * connection and leaves it unused does not hold it (and its buffers) for ever.
 */
function closeWhenIdle(session: http2.Http2Session, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(() => session.close(), idleMs).unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      if (--open === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}

export function createOnePortServer(handler: RequestHandler, options: OnePortOptions): OnePortServer {
  // headersTimeout guards against clients that trickle headers; no whole-request timeout, because
  // a large upload on a slow link may legitimately take longer than any fixed limit.
  const http1 = http.createServer({ keepAliveTimeout: 65_000, headersTimeout: 60_000, requestTimeout: 0 }, handler);
  // Node starts its connection tracking (header timeouts, closeIdleConnections) on 'listening',
  // which a server that never listens itself never emits.
  http1.emit("listening");
  const h2Handler: RequestHandler = (req, res) => {
    // The TLS server also answers HTTP/1.1 (ALPN); only HTTP/2 requests have a stream.
    if (req instanceof http2.Http2ServerRequest) releaseStreamWithAnswer(req);
    handler(req, res);
  };
  const settings = { maxConcurrentStreams: options.h2MaxStreams, initialWindowSize: H2_STREAM_WINDOW_BYTES };
  const h2c = http2.createServer({ settings }, h2Handler);
  const secure = options.tls ? http2.createSecureServer({ ...options.tls, allowHTTP1: true, settings }, h2Handler) : undefined;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  for (const server of [h2c, secure]) {
    server?.on("session", (session) => {
      sessions.add(session);
      // The connection's window is not a setting: it grows by a WINDOW_UPDATE once the session is up.
      session.once("localSettings", () => session.setLocalWindowSize(H2_SESSION_WINDOW_BYTES));
      closeWhenIdle(session, options.h2IdleMs);
      session.once("close", () => sessions.delete(session));
    });
  }

  const outer = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let seen: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), FIRST_BYTE_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const kind = sniff(seen);
      if (kind === "undecided") return;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      socket.unshift(seen);
      const target = kind === "tls" ? secure : kind === "h2c" ? h2c : http1;
      if (target === undefined) {
        socket.destroy(); // TLS was offered but no certificate is configured
        return;
      }
      target.emit("connection", socket);
      // HTTP/2 and TLS hand the unshifted bytes and the socket to native code, which reads on its
      // own: resuming there would race it. The HTTP/1.1 server reads through the stream.
      if (kind === "http1") socket.resume();
    };
    socket.on("data", onData);
    socket.once("end", () => clearTimeout(timer));
    socket.resume();
  }) as OnePortServer;
  // Beyond it the kernel's accepted connection is closed at once (net.Server's own limit).
  outer.maxConnections = options.maxConnections;

  // fastify installs its clientError handler on the server it is given; the HTTP/1.1 parser is ours.
  http1.on("clientError", (err, socket) => {
    if (outer.listenerCount("clientError") > 0) outer.emit("clientError", err, socket);
    else socket.destroy();
  });

  outer.once("close", () => http1.close());
  outer.closeAllConnections = () => {
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
  };
  outer.closeIdleConnections = () => {
    http1.closeIdleConnections();
    for (const session of sessions) session.close();
  };
  return outer;
}
