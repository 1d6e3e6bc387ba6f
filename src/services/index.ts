/**
 * The RPC services this agent serves, listed once. Tests and the fuzzer walk SERVED_SERVICES to
 * check that every RPC is access-controlled; createServices refuses to start if the modules
 * implement anything else.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { EnvdFilesystem, EnvdProcess } from "../e2b/envd-services.js";
import { ContextService, ExecutionService, Filesystem, Process } from "../gen/sandboxagent/api_pb.js";
import { createExecutionServices } from "./execution/index.js";
import { createFilesystemService } from "./filesystem/index.js";
import { createProcessService } from "./process/index.js";
import type { ServiceDeps, ServiceFactory } from "./service-module.js";

export const SERVED_SERVICES = [Filesystem, Process, ExecutionService, ContextService, EnvdFilesystem, EnvdProcess] as const;

const FACTORIES: readonly ServiceFactory[] = [createFilesystemService, createProcessService, createExecutionServices];

export interface Services {
  readonly routes: (router: ConnectRouter) => void;
  readonly dispose: () => Promise<void>;
}

export function createServices(deps: ServiceDeps): Services {
  const modules = FACTORIES.map((factory) => factory(deps));
  const implementations = modules.flatMap((module) => module.implementations);
  const implemented = implementations.map((impl) => impl.service.typeName).sort();
  const listed = SERVED_SERVICES.map((service) => service.typeName).sort();
  if (implemented.join() !== listed.join()) {
    throw new Error(`the service modules implement [${implemented.join(", ")}], SERVED_SERVICES lists [${listed.join(", ")}]`);
  }
  return {
    routes: (router) => {
      for (const impl of implementations) impl.register(router);
    },
    dispose: async () => {
      await Promise.allSettled(modules.map((module) => module.dispose()));
    },
  };
}
