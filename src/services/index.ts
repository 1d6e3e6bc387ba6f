/**
 * The RPC services, assembled in one table of contents. Each service module returns its
 * implementation and a dispose function that releases what it holds (watchers, processes, kernels).
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { ContextService, ExecutionService, Filesystem, Process } from "../gen/sandboxagent/api_pb.js";
import { createExecutionServices } from "./execution/index.js";
import { createFilesystemService } from "./filesystem/index.js";
import { createProcessService } from "./process/index.js";

export interface ServiceDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
}

export interface Services {
  readonly routes: (router: ConnectRouter) => void;
  readonly dispose: () => Promise<void>;
}

/** The services this agent serves; tests walk it to check that every RPC is access-controlled. */
export const SERVED_SERVICES = [Filesystem, Process, ExecutionService, ContextService] as const;

export function createServices(deps: ServiceDeps): Services {
  const filesystem = createFilesystemService(deps);
  const process = createProcessService(deps);
  const execution = createExecutionServices(deps);
  const all = [filesystem, process, execution];
  return {
    routes: (router) => {
      router.service(Filesystem, filesystem.impl);
      router.service(Process, process.impl);
      router.service(ExecutionService, execution.execution);
      router.service(ContextService, execution.context);
    },
    dispose: async () => {
      await Promise.allSettled(all.map((service) => service.dispose()));
    },
  };
}
