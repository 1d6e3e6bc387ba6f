/** The agent's logger type: fastify's pino logger, passed to services that need to report. */
import type { FastifyBaseLogger } from "fastify";

export type Logger = FastifyBaseLogger;
