/**
 * CORS for browser clients (connect-web, gRPC-web, fetch of files) on other origins. Access is by
 * header token, never by cookie, so any origin may call; the token is what protects the agent.
 * Preflights are answered before authentication, because browsers send them without credentials.
 */
import type { FastifyInstance } from "fastify";

const ALLOWED_HEADERS = [
  "authorization",
  "content-type",
  "x-access-token",
  "x-user",
  "x-sandbox-id",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-accept-encoding",
  "connect-content-encoding",
  "grpc-timeout",
  "grpc-accept-encoding",
  "x-grpc-web",
  "x-user-agent",
  "keepalive-ping-interval",
  "range",
  "if-range",
  "if-none-match",
  "if-modified-since",
].join(", ");

const EXPOSED_HEADERS = [
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "connect-content-encoding",
  "content-disposition",
  "content-range",
  "content-length",
  "accept-ranges",
  "etag",
  "last-modified",
].join(", ");

export function registerCors(app: FastifyInstance): void {
  app.addHook("onRequest", async (req, reply) => {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    reply.header("access-control-allow-origin", origin);
    reply.header("vary", "Origin");
    reply.header("access-control-expose-headers", EXPOSED_HEADERS);
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      await reply
        .code(204)
        .header("access-control-allow-methods", "GET, HEAD, POST, OPTIONS")
        .header("access-control-allow-headers", ALLOWED_HEADERS)
        .header("access-control-max-age", "7200")
        .send();
    }
  });
}
