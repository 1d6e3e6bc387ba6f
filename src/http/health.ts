import type { FastifyPluginAsync } from "fastify";

/** `GET /health`: open and cheap, so load balancers and SDKs can poll it. */
export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.route({
    method: ["GET", "HEAD"],
    url: "/health",
    config: { access: { public: true } },
    handler: async (_req, reply) => reply.header("cache-control", "no-store").type("text/plain").send("OK"),
  });
};
