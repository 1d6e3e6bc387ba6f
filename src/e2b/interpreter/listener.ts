/**
 * The E2B code interpreter's own port (49999, where its SDK looks without E2B_SANDBOX_URL): the
 * agent's one request handler (fastify's, so the same gate, hooks and routes) behind a filter
 * that lets only the interpreter's routes and /health through. Every other path is 404 here, so
 * files and processes stay on the main port alone.
 */
import type { AddressInfo } from "node:net";
import type { Logger } from "../../log.js";
import { createOnePortServer, type OnePortOptions, type OnePortServer, type RequestHandler } from "../../net/one-port.js";
import { isInterpreterPath } from "./routes.js";

export interface InterpreterListener {
  readonly port: number;
  readonly close: () => Promise<void>;
}

function allowed(url: string | undefined): boolean {
  const path = (url ?? "").split("?")[0] ?? "";
  return path === "/health" || isInterpreterPath(path);
}

export function createInterpreterServer(handler: RequestHandler, options: OnePortOptions): OnePortServer {
  return createOnePortServer((req, res) => {
    if (allowed(req.url)) {
      handler(req, res);
      return;
    }
    res.statusCode = 404;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ message: "the code interpreter port serves only /execute, /contexts and /health" }));
  }, options);
}

/**
 * Listens on `port`; when it cannot (taken, most likely by another agent or E2B's own server), says
 * so and returns undefined: the main port serves the same routes, so the agent goes on without it.
 */
export async function listenInterpreter(
  handler: RequestHandler,
  host: string,
  port: number,
  options: OnePortOptions,
  log: Logger,
): Promise<InterpreterListener | undefined> {
  const server = createInterpreterServer(handler, options);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    log.warn({ port, err: (err as Error).message }, "cannot listen on the code interpreter port; its routes stay on the main port only");
    return undefined;
  }
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
