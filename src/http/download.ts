import type { FastifyPluginAsync } from "fastify";
import type { Config } from "../config.js";

export const downloadRoutes: FastifyPluginAsync<{ config: Config }> = async (_app, _opts) => {};
