import type { FastifyPluginAsync } from "fastify";
import type { Metrics } from "../metrics.js";

/** `GET /metrics` in the Prometheus text format; behind the access token like everything else. */
export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (app, { metrics }) => {
  app.get("/metrics", async (_req, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });
};
