/**
 * The E2B code interpreter's REST and NDJSON routes (contract 3.3), on the agent's main port and
 * on its interpreter listener (listener.ts). Executions run through the same runner as the
 * Connect face's (services/execution/run.ts): queueing, time limit, interrupt on a client that
 * leaves or times out, restart of a kernel that ignores it.
 *
 * Errors are plain text with E2B's statuses: the SDK shows a 404's body, and for other statuses
 * only "<status> <statusText>".
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { environmentProblem } from "../../env-vars.js";
import type { Logger } from "../../log.js";
import type { SandboxSettings } from "../../sandbox-settings.js";
import { executionEnv } from "../../services/execution/execute.js";
import { runExecution } from "../../services/execution/run.js";
import type { InterpreterContexts } from "./contexts.js";
import { NdjsonWriter } from "./ndjson.js";
import { E2bResultSink } from "./result-lines.js";

export interface InterpreterRouteOptions {
  readonly contexts: InterpreterContexts;
  /** Time limit of an execution; 0 for none (the Connect face's --execution-timeout-ms). */
  readonly defaultTimeoutMs: number;
  /** Largest request body (the Connect face's --rpc-max-bytes): code can be long. */
  readonly bodyLimit: number;
  /** The sandbox's env vars from POST /init, which every execution gets under its own. */
  readonly settings: SandboxSettings;
  readonly log?: Logger;
}

/** The routes of this face, for the interpreter listener's filter. */
export function isInterpreterPath(path: string): boolean {
  return path === "/execute" || path === "/contexts" || path.startsWith("/contexts/");
}

/**
 * The gate lets a call to /contexts* without X-Access-Token in as the default user (src/gate.ts);
 * one that sends a token has passed the usual check.
 */
const isTokenless = (req: FastifyRequest): boolean => req.headers["x-access-token"] === undefined;

const STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.NotFound]: 404,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 503,
  [Code.Unavailable]: 503,
};

/** Headers hooks set on the reply (CORS), which a hijacked reply must write itself. */
function headersOf(reply: FastifyReply): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value : String(value);
  }
  return headers;
}

function sendText(reply: FastifyReply, status: number, text: string): FastifyReply {
  return reply.code(status).type("text/plain; charset=utf-8").send(text);
}

/** An error from the registry or a kernel, as E2B says it: `Context <id> not found`, or the reason. */
function sendFailure(reply: FastifyReply, err: unknown, id?: string): FastifyReply {
  if (!(err instanceof ConnectError)) {
    reply.log.error({ err }, "E2B interpreter route failed");
    return sendText(reply, 500, (err as Error).message);
  }
  const text = err.code === Code.NotFound && id !== undefined ? err.rawMessage.replace(/^context ".*?" not found/, `Context ${id} not found`) : err.rawMessage;
  return sendText(reply, STATUS[err.code] ?? 500, text);
}

interface ExecuteBody {
  readonly code: string;
  readonly contextId: string | undefined;
  readonly language: string | undefined;
  readonly env: Record<string, string>;
}

const optionalString = (value: unknown): value is string | null | undefined => value === undefined || value === null || typeof value === "string";

/** The request as E2B's pydantic model takes it; a string that says what is wrong otherwise. */
function parseExecuteBody(body: unknown): ExecuteBody | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "the body must be a JSON object";
  const { code, context_id: contextId, language, env_vars: envVars } = body as Record<string, unknown>;
  if (typeof code !== "string") return "code: a string is required";
  if (!optionalString(contextId)) return "context_id: must be a string";
  if (!optionalString(language)) return "language: must be a string";
  if (envVars !== undefined && envVars !== null && (typeof envVars !== "object" || Array.isArray(envVars))) return "env_vars: must be an object";
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(envVars ?? {})) {
    if (typeof value !== "string") return `env_vars.${name}: must be a string`;
    env[name] = value;
  }
  return { code, contextId: contextId || undefined, language: language || undefined, env };
}

export const interpreterRoutes: FastifyPluginAsync<InterpreterRouteOptions> = async (app, options) => {
  const { contexts, log } = options;
  const withoutToken = { access: { withoutToken: true } };
  // The SDK sends Content-Type: application/json with no body on restart and remove, which
  // fastify's own parser refuses; here (this plugin only) an empty body is no body.
  app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: options.bodyLimit }, (_req, text, done) => {
    if (text === "") return done(null, undefined);
    try {
      done(null, JSON.parse(text as string) as unknown);
    } catch (err) {
      done(Object.assign(err as Error, { statusCode: 400 }), undefined);
    }
  });

  app.post("/execute", { bodyLimit: options.bodyLimit }, async (req, reply) => {
    const body = parseExecuteBody(req.body);
    if (typeof body === "string") return reply.code(422).send({ detail: body });
    if (body.contextId !== undefined && body.language !== undefined) {
      return sendText(reply, 400, "Only one of context_id or language can be provided");
    }
    const problem = environmentProblem(body.env);
    if (problem !== undefined) return sendText(reply, 400, problem);
    // A client that leaves (the SDK aborts at its timeoutMs) stops its execution: run.ts interrupts
    // the kernel. Watched from here, since it may leave while its default context is starting.
    const left = new AbortController();
    reply.raw.once("close", () => {
      if (!reply.raw.writableFinished) left.abort();
    });
    let context: Awaited<ReturnType<InterpreterContexts["defaultFor"]>>;
    try {
      context = body.contextId === undefined ? await contexts.defaultFor(body.language ?? "python", req.caller) : contexts.get(body.contextId, req.caller);
    } catch (err) {
      return sendFailure(reply, err, body.contextId);
    }

    reply.hijack();
    const writer = new NdjsonWriter(reply.raw, headersOf(reply));
    if (left.signal.aborted) writer.abandon();
    else left.signal.addEventListener("abort", () => writer.abandon(), { once: true });
    const limitMs = options.defaultTimeoutMs > 0 ? options.defaultTimeoutMs : undefined;
    try {
      await runExecution(context, {
        code: body.code,
        env: executionEnv(context, options.settings, body.env),
        signal: left.signal,
        limitMs,
        sink: new E2bResultSink((line) => writer.send(line)),
        log,
      });
    } catch (err) {
      const message = err instanceof ConnectError ? err.rawMessage : (err as Error).message;
      if (!(err instanceof ConnectError)) req.log.error({ err }, "E2B execution failed");
      writer.send({ type: "error", name: "ExecutionError", value: message, traceback: "" });
    }
    writer.end();
  });

  app.post("/contexts", { config: withoutToken }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (typeof body !== "object" || Array.isArray(body) || !optionalString(body.language) || !optionalString(body.cwd)) {
      return reply.code(422).send({ detail: "language and cwd must be strings" });
    }
    try {
      return await contexts.create(body.language ?? undefined, body.cwd ?? undefined, req.caller, isTokenless(req));
    } catch (err) {
      return sendFailure(reply, err);
    }
  });

  app.get("/contexts", { config: withoutToken }, async (req) => {
    await contexts.ensureDefaults(req.caller);
    return contexts.list(req.caller, isTokenless(req));
  });

  app.delete<{ Params: { id: string } }>("/contexts/:id", { config: withoutToken }, async (req, reply) => {
    try {
      await contexts.remove(req.params.id, req.caller, isTokenless(req));
      return reply.type("application/json").send("null");
    } catch (err) {
      return sendFailure(reply, err, req.params.id);
    }
  });

  app.post<{ Params: { id: string } }>("/contexts/:id/restart", { config: withoutToken }, async (req, reply) => {
    try {
      await contexts.restart(req.params.id, req.caller, isTokenless(req));
      return reply.type("application/json").send("null");
    } catch (err) {
      return sendFailure(reply, err, req.params.id);
    }
  });
};
