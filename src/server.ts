/**
 * Assembles the agent: one fastify instance on one port (see net/one-port.ts), the plain HTTP
 * routes as plugins behind one access hook, and the Connect services behind one auth interceptor.
 */
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import Fastify, { LogController, type FastifyInstance, type FastifyServerFactory, type RawServerDefault } from "fastify";
import type { AddressInfo } from "node:net";
import type { Config } from "./config.js";
import { gate } from "./gate.js";
import { downloadRoutes } from "./http/download.js";
import { registerCors } from "./http/cors.js";
import { envdRoutes } from "./e2b/envd-routes.js";
import { healthRoutes } from "./http/health.js";
import { metricsRoutes } from "./http/metrics.js";
import { uploadRoutes } from "./http/upload.js";
import { createOnePortServer, type OnePortOptions, type RequestHandler } from "./net/one-port.js";
import { InterpreterContexts } from "./e2b/interpreter/contexts.js";
import { listenInterpreter } from "./e2b/interpreter/listener.js";
import { interpreterRoutes } from "./e2b/interpreter/routes.js";
import { lookupUser } from "./users.js";
import { callerValues } from "./services/caller.js";
import { applyConnectFixes, RPC_JSON_OPTIONS } from "./services/connect-fixes/index.js";
import { createServices } from "./services/index.js";
import { IdleMemory } from "./idle-memory.js";
import { releaseIdleFileWorkers } from "./user-fs/access.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { SandboxSettings } from "./sandbox-settings.js";

export interface AgentOptions extends Config {
  /** Required with `auth: "token"`; with the other modes, /init may set one. */
  readonly accessToken: string | undefined;
  /** Where log lines go (default stdout); tests capture them here. */
  readonly logStream?: NodeJS.WritableStream;
}

export interface Agent {
  readonly app: FastifyInstance;
  readonly port: number;
  /** `http://host:port` with a host that a local client can dial. */
  readonly url: string;
  /** The same for the E2B code interpreter's own port, when it listens. */
  readonly interpreterUrl: string | undefined;
  readonly close: () => Promise<void>;
}

export async function buildApp(config: AgentOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: config.logLevel,
      ...(config.logStream ? { stream: config.logStream } : {}),
      redact: { paths: ['req.headers["x-access-token"]', "req.headers.authorization"], censor: "[redacted]" },
      serializers: {
        req: (req) => ({ method: req.method, url: redactQuery(req.url), remoteAddress: req.ip }),
      },
    },
    // One line per request is logged when it ends (see observeRequests), with route and duration.
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: true,
    return503OnClosing: true,
    serverFactory: onePortFactory(config),
  });

  const metrics = createMetrics();
  app.decorate("metrics", metrics);
  // Observed first: the CORS hook answers preflights itself, which ends the hook chain, and
  // preflights are requests an operator counts too.
  const idleMemory = new IdleMemory({ release: [releaseIdleFileWorkers] });
  app.addHook("onClose", async () => idleMemory.stop());
  metrics.observe("idle_collections", "Full collections (and allocator trims) run because the agent was idle", () => idleMemory.collections);
  observeRequests(app, metrics, idleMemory);
  registerCors(app);
  if (config.auth === "token" && config.accessToken === undefined) throw new Error("auth mode token needs an access token");
  const settings = new SandboxSettings(config.auth, { token: config.accessToken, defaultUser: config.defaultUser, defaultWorkdir: config.defaultWorkdir });
  const services = createServices({ config, log: app.log, metrics, settings });
  app.addHook("onClose", async () => services.dispose());

  // After CORS, which answers preflights itself; before anything reads a body (src/gate.ts).
  app.decorateRequest("caller", null as never);
  app.addHook("onRequest", gate({ settings, signedUrlMaxSeconds: config.signedUrlMaxSeconds }));

  // The E2B code interpreter's routes, over the same contexts as the Connect services.
  const interpreter = new InterpreterContexts(services.contexts, () => settings.defaultWorkdir, app.log);
  if (config.interpreterPort > 0) {
    // As E2B's server does, where its SDK is expected: the default contexts are ready at start.
    const user = lookupUser(settings.defaultUser);
    if (user !== undefined) void interpreter.ensureDefaults(user);
  }
  await app.register(interpreterRoutes, {
    contexts: interpreter,
    defaultTimeoutMs: config.executionTimeoutMs,
    bodyLimit: config.rpcMaxBytes,
    settings,
    log: app.log,
  });

  await app.register(async (plain) => {
    await plain.register(healthRoutes);
    await plain.register(uploadRoutes, { config });
    await plain.register(downloadRoutes);
    await plain.register(metricsRoutes, { metrics });
    await plain.register(envdRoutes, { config, settings });
  });

  await app.register(fastifyConnectPlugin, {
    routes: (router) => {
      services.routes(router);
      // Fixes to how connect-es answers, around every RPC on every protocol (connect-fixes/).
      applyConnectFixes(router, { preencoded: services.preencoded });
    },
    contextValues: (req) => callerValues(req.caller ?? undefined),
    // The JS SDK rejects compressed frames; still accept compressed requests from other clients.
    compressMinBytes: Number.MAX_SAFE_INTEGER,
    readMaxBytes: config.rpcMaxBytes,
    jsonOptions: RPC_JSON_OPTIONS,
  });

  // Unknown routes pass the gate like any other: without the token, nothing is said of what exists.
  app.setNotFoundHandler(async (req, reply) => reply.code(404).send({ message: `no route for ${req.method} ${req.url.split("?")[0]}` }));
  return app;
}

/** Routes that pollers call on a timer, which say nothing about whether the agent is in use. */
const PROBE_ROUTES: ReadonlySet<string> = new Set(["/health", "/metrics"]);

/**
 * Counts, times and logs every request once, when its response closes: this also covers streams
 * that end early and clients that go away, which fastify's onResponse hook does not see.
 */
function observeRequests(app: FastifyInstance, metrics: Metrics, idleMemory: IdleMemory): void {
  app.addHook("onRequest", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    const started = process.hrtime.bigint();
    metrics.inFlight.inc({ route });
    // Health checks and scrapes come every few seconds for ever: counted as activity, they would
    // keep an otherwise idle agent from ever giving its memory back.
    const counts = !PROBE_ROUTES.has(route);
    if (counts) idleMemory.requestStarted();
    reply.raw.once("close", () => {
      if (counts) idleMemory.requestEnded();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = reply.raw.statusCode;
      metrics.inFlight.dec({ route });
      metrics.requests.inc({ route, method: req.method, status: String(status) });
      metrics.requestDuration.observe({ route, method: req.method }, seconds);
      const completed = reply.raw.writableFinished;
      req.log.info({ method: req.method, route, url: redactQuery(req.url), status, durationMs: Math.round(seconds * 1e6) / 1e3, completed }, "request");
    });
  });
}

/**
 * fastify is typed for one kind of server; ours hands it HTTP/1.1 and HTTP/2 compatibility
 * requests alike, which fastify and connect-node both handle. The cast says so in one place.
 */
function onePortFactory(config: AgentOptions): FastifyServerFactory<RawServerDefault> {
  const factory = (handler: RequestHandler) => createOnePortServer(handler, onePortOptions(config));
  return factory as unknown as FastifyServerFactory<RawServerDefault>;
}

function onePortOptions(config: AgentOptions): OnePortOptions {
  return { tls: config.tls, maxConnections: config.maxConnections, h2MaxStreams: config.h2MaxStreams, h2IdleMs: config.h2IdleMs };
}

/** Query parameters that say what was asked for, not who may ask: the only ones logged as sent. */
const LOGGED_PARAMS = new Set(["path", "username"]);

/**
 * Keeps secrets out of the logs: every query value but `path` and `username` is redacted, so a
 * signature, or a token a client wrongly put in a URL, never reaches a log line.
 */
export function redactQuery(url: string): string {
  const query = url.indexOf("?");
  if (query < 0) return url;
  const redacted = url
    .slice(query + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      if (eq < 0) return pair;
      const name = pair.slice(0, eq);
      return LOGGED_PARAMS.has(name) ? pair : `${name}=[redacted]`;
    })
    .join("&");
  return `${url.slice(0, query)}?${redacted}`;
}

export async function startAgent(config: AgentOptions): Promise<Agent> {
  const app = await buildApp(config);
  await app.listen({ host: config.host, port: config.port });
  const { port } = app.server.address() as AddressInfo;
  const dialHost = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const hostForUrl = dialHost.includes(":") ? `[${dialHost}]` : dialHost;
  // fastify's own request handler (app.routing), so that port has the same gate and hooks.
  const interpreter =
    config.interpreterPort > 0
      ? await listenInterpreter(app.routing as unknown as RequestHandler, config.host, config.interpreterPort, onePortOptions(config), app.log)
      : undefined;
  return {
    app,
    port,
    url: `http://${hostForUrl}:${port}`,
    interpreterUrl: interpreter === undefined ? undefined : `http://${hostForUrl}:${interpreter.port}`,
    close: async () => {
      await interpreter?.close();
      await app.close();
    },
  };
}
