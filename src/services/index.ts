/**
 * The RPC services this agent serves, listed once. Tests and the fuzzer walk SERVED_SERVICES to
 * check that every RPC is access-controlled; createServices refuses to start if the modules
 * implement anything else.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { EnvdFilesystem, EnvdProcess } from "../e2b/envd-services.js";
import { ContextService, ExecutionService, Filesystem, Process } from "../gen/sandboxagent/api_pb.js";
import type { ContextRegistry } from "./execution/contexts.js";
import { createExecutionServices } from "./execution/index.js";
import { createFilesystemService } from "./filesystem/index.js";
import { createProcessService } from "./process/index.js";
import type { ServiceDeps, ServiceFactory } from "./service-module.js";

export const SERVED_SERVICES = [Filesystem, Process, ExecutionService, ContextService, EnvdFilesystem, EnvdProcess] as const;

const FACTORIES: readonly ServiceFactory[] = [createFilesystemService, createProcessService];

export interface Services {
  readonly routes: (router: ConnectRouter) => void;
  /** Methods whose handlers may encode frames themselves (connect-fixes/preencoded.ts). */
  readonly preencoded: readonly DescMethod[];
  /** The execution contexts, for the E2B code interpreter's routes. */
  readonly contexts: ContextRegistry;
  readonly dispose: () => Promise<void>;
}

export function createServices(deps: ServiceDeps): Services {
  const execution = createExecutionServices(deps);
  const modules = [...FACTORIES.map((factory) => factory(deps)), execution];
  const implementations = modules.flatMap((module) => module.implementations);
  const implemented = implementations.map((impl) => impl.service.typeName).sort();
  const listed = SERVED_SERVICES.map((service) => service.typeName).sort();
  if (implemented.join() !== listed.join()) {
    throw new Error(`the service modules implement [${implemented.join(", ")}], SERVED_SERVICES lists [${listed.join(", ")}]`);
  }
  return {
    contexts: execution.contexts,
    preencoded: modules.flatMap((module) => module.preencoded ?? []),
    routes: (router) => {
      for (const impl of implementations) impl.register(router);
    },
    dispose: async () => {
      await Promise.allSettled(modules.map((module) => module.dispose()));
    },
  };
}
