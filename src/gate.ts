/**
 * The one authentication gate, in front of every route and RPC on every protocol. It decides from
 * the request's headers alone (or, for the file routes, the signed query) before a single byte of
 * the body is read: connect-es would otherwise read and parse a whole RPC message (up to its read
 * limit) before any interceptor ran, and anyone who reaches the port could make the agent buffer
 * hundreds of MB. The caller's Linux user is handed on from here: `req.caller` for the plain
 * routes, a context value for the RPC handlers (services/caller.ts).
 *
 * A refusal answers in the caller's protocol (Connect unary and streaming, gRPC, gRPC-web, plain
 * JSON) and does not wait for the body: an HTTP/1.1 connection is closed once the answer is out, an
 * HTTP/2 stream reset (net/one-port.ts).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { AuthError, resolveUser, userNameFromHeaders, verifySignedUrl, type Operation } from "./auth.js";
import type { SandboxSettings } from "./sandbox-settings.js";
import type { User } from "./users.js";

export interface RouteAccess {
  /** No token needed (health). */
  readonly public?: boolean;
  /**
   * A signed URL for this operation is accepted instead of the token; `path` is what was signed.
   * `envd`: signed as envd signs `/files` URLs, over the raw path and user query values ("" when absent).
   */
  readonly signed?: { readonly op: Operation; readonly path: (req: FastifyRequest) => string | undefined; readonly envd?: boolean };
  /** POST /init: open while no token is set, then only to the token's holder (sandbox-settings.ts). */
  readonly init?: boolean;
  /** E2B code interpreter: a call without X-Access-Token comes in as the default user (see authenticate). */
  readonly withoutToken?: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The Linux user the request acts as; set by the gate on every non-public route. */
    caller: User;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

export interface GateOptions {
  readonly settings: SandboxSettings;
  readonly signedUrlMaxSeconds: number;
}

type Query = Record<string, string | string[] | undefined>;

const single = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

/** gRPC status UNAUTHENTICATED. */
const GRPC_UNAUTHENTICATED = "16";

/** Who is calling: the user the token or the signed URL names; AuthError when neither holds. */
function authenticate(req: FastifyRequest, access: RouteAccess, options: GateOptions): User {
  const { settings } = options;
  const query = req.query as Query | undefined;
  // envd's file routes name the user in the query; everything else in the headers.
  const named = (): string =>
    (access.signed?.envd === true ? single(query?.username) : undefined) ?? userNameFromHeaders((name) => req.headers[name], settings.defaultUser);
  // `--auth none`: no credentials.
  if (settings.open) return resolveUser(named());
  const token = settings.accessToken;
  if (token === undefined) throw new AuthError("the sandbox is not initialised yet: POST /init sets its access token");
  const signature = access.signed === undefined ? undefined : single(query?.signature);
  let userName: string;
  if (access.signed !== undefined && signature !== undefined) {
    const username = single(query?.username);
    userName = verifySignedUrl(
      { signature, expiration: single(query?.signature_expiration), username },
      access.signed.path(req),
      access.signed.op,
      token,
      settings.defaultUser,
      options.signedUrlMaxSeconds,
      { raw: access.signed.envd === true },
    );
  } else if (access.withoutToken === true && req.headers["x-access-token"] === undefined) {
    // E2B's code interpreter SDK sends no token on /contexts*: such a call acts as the default
    // user, never one its headers name, and those routes only manage contexts (running code,
    // POST /execute, needs the token). A call that sends a token is checked as usual.
    userName = settings.defaultUser;
  } else if (settings.tokenMatches(single(req.headers["x-access-token"]))) {
    userName = named();
  } else {
    throw new AuthError("missing or invalid access token");
  }
  return resolveUser(userName);
}

/** A Connect end-of-stream message: flag 0x02, then the JSON error, as connect-es clients read it. */
function connectEndStream(message: string): Buffer {
  const json = Buffer.from(JSON.stringify({ error: { code: "unauthenticated", message } }));
  const head = Buffer.alloc(5);
  head[0] = 0x02;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/**
 * The refusal, in the request's own protocol. gRPC and gRPC-web say it in headers with an empty
 * body (a trailers-only response); Connect streams in an end-of-stream message; Connect unary and
 * the plain routes with 401 and a JSON body.
 */
export function refuse(req: FastifyRequest, reply: FastifyReply, message: string): FastifyReply {
  // Nothing more of this request is wanted: HTTP/1.1 closes after the answer (see closeAfter).
  if (req.raw.httpVersionMajor === 1) reply.header("connection", "close");
  const contentType = single(req.headers["content-type"]) ?? "";
  if (contentType.startsWith("application/grpc")) {
    return reply
      .code(200)
      .header("content-type", contentType.startsWith("application/grpc-web") ? "application/grpc-web+proto" : "application/grpc")
      .header("grpc-status", GRPC_UNAUTHENTICATED)
      .header("grpc-message", encodeURIComponent(message))
      .send();
  }
  if (contentType.startsWith("application/connect+")) {
    // The stream's own codec (clients check it); the end-of-stream message is JSON in both.
    const codec = contentType.startsWith("application/connect+json") ? "application/connect+json" : "application/connect+proto";
    return reply.code(200).header("content-type", codec).send(connectEndStream(message));
  }
  return reply.code(401).header("content-type", "application/json").send({ code: "unauthenticated", message });
}

/**
 * Once a refusal is out, an HTTP/1.1 connection stops reading what the client still sends and
 * closes: the rest of a large or trickled body is never read at the client's pace. The kernel's
 * buffer fills and TCP stops the sender; the socket is destroyed a moment later, after the client
 * has had the answer.
 */
function closeAfter(req: FastifyRequest, reply: FastifyReply): void {
  if (req.raw.httpVersionMajor !== 1) return;
  const socket = req.raw.socket;
  reply.raw.once("finish", () => {
    socket.pause();
    socket.end();
    setTimeout(() => socket.destroy(), 1_000).unref();
  });
}

/** The gate as a fastify onRequest hook for the whole agent. */
export function gate(options: GateOptions) {
  return async function authenticateRequest(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const access = req.routeOptions.config?.access ?? {};
    if (access.public) return;
    try {
      if (access.init) {
        if (!options.settings.mayInit(single(req.headers["x-access-token"]))) throw new AuthError("missing or invalid access token");
        return;
      }
      req.caller = authenticate(req, access, options);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      closeAfter(req, reply);
      await refuse(req, reply, err.message);
    }
  };
}
