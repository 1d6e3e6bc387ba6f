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
import { healthRoutes } from "./http/health.js";
import { metricsRoutes } from "./http/metrics.js";
import { uploadRoutes } from "./http/upload.js";
import { createOnePortServer, type RequestHandler } from "./net/one-port.js";
import { callerValues } from "./services/caller.js";
import { applyConnectFixes, RPC_JSON_OPTIONS } from "./services/connect-fixes/index.js";
import { createServices } from "./services/index.js";
import { IdleMemory } from "./idle-memory.js";
import { createMetrics, type Metrics } from "./metrics.js";

export interface AgentOptions extends Config {
  readonly accessToken: string;
  /** Where log lines go (default stdout); tests capture them here. */
  readonly logStream?: NodeJS.WritableStream;
}

export interface Agent {
  readonly app: FastifyInstance;
  readonly port: number;
  /** `http://host:port` with a host that a local client can dial. */
  readonly url: string;
  readonly close: () => Promise<void>;
}

export async function buildApp(config: AgentOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: config.logLevel,
      ...(config.logStream ? { stream: config.logStream } : {}),
      redact: { paths: ["req.headers[\"x-access-token\"]", "req.headers.authorization"], censor: "[redacted]" },
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
  const idleMemory = new IdleMemory();
  app.addHook("onClose", async () => idleMemory.stop());
  observeRequests(app, metrics, idleMemory);
  registerCors(app);
  const services = createServices({ config, log: app.log, metrics });
  app.addHook("onClose", async () => services.dispose());

  // After CORS, which answers preflights itself; before anything reads a body (src/gate.ts).
  app.decorateRequest("caller", null as never);
  app.addHook("onRequest", gate({ token: config.accessToken, defaultUser: config.defaultUser, signedUrlMaxSeconds: config.signedUrlMaxSeconds }));

  await app.register(async (plain) => {
    await plain.register(healthRoutes);
    await plain.register(uploadRoutes, { config });
    await plain.register(downloadRoutes);
    await plain.register(metricsRoutes, { metrics });
  });

  await app.register(fastifyConnectPlugin, {
    routes: (router) => {
      services.routes(router);
      // Fixes to how connect-es answers, around every RPC on every protocol (connect-fixes/).
      applyConnectFixes(router);
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

/**
 * Counts, times and logs every request once, when its response closes: this also covers streams
 * that end early and clients that go away, which fastify's onResponse hook does not see.
 */
function observeRequests(app: FastifyInstance, metrics: Metrics, idleMemory: IdleMemory): void {
  app.addHook("onRequest", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    const started = process.hrtime.bigint();
    metrics.inFlight.inc({ route });
    idleMemory.requestStarted();
    reply.raw.once("close", () => {
      idleMemory.requestEnded();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = reply.raw.statusCode;
      metrics.inFlight.dec({ route });
      metrics.requests.inc({ route, method: req.method, status: String(status) });
      metrics.requestDuration.observe({ route, method: req.method }, seconds);
      const completed = reply.raw.writableFinished;
      req.log.info(
        { method: req.method, route, url: redactQuery(req.url), status, durationMs: Math.round(seconds * 1e6) / 1e3, completed },
        "request",
      );
    });
  });
}

/**
 * fastify is typed for one kind of server; ours hands it HTTP/1.1 and HTTP/2 compatibility
 * requests alike, which fastify and connect-node both handle. The cast says so in one place.
 */
function onePortFactory(config: AgentOptions): FastifyServerFactory<RawServerDefault> {
  const factory = (handler: RequestHandler) =>
    createOnePortServer(handler, { tls: config.tls, maxConnections: config.maxConnections, h2MaxStreams: config.h2MaxStreams, h2IdleMs: config.h2IdleMs });
  return factory as unknown as FastifyServerFactory<RawServerDefault>;
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
  return { app, port, url: `http://${hostForUrl}:${port}`, close: () => app.close() };
}
