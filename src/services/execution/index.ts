/**
 * ExecutionService and ContextService share one kernel manager: the catalog of installed kernels,
 * the warm pool, and the registry of contexts. Built together, disposed together.
 */
import { ContextService, ExecutionService } from "../../gen/sandboxagent/api_pb.js";
import { KernelCatalog } from "../../kernels/catalog.js";
import { bashDriverFactory, jshellDriverFactory } from "../../kernels/drivers/index.js";
import { loadLanguageTable } from "../../kernels/languages.js";
import { KernelPool } from "../../kernels/pool.js";
import { removeStaleRuntimeDirectories } from "../../kernels/runtime-dir.js";
import { lookupUser } from "../../users.js";
import { implement, type ServiceDeps, type ServiceModule } from "../service-module.js";
import { ContextRegistry } from "./contexts.js";
import { createContext } from "./create-context.js";
import { destroyContext } from "./destroy-context.js";
import { execute } from "./execute.js";

/** The language the warm pool keeps kernels for. */
const POOL_LANGUAGE = "python";

/** The execution module also hands its registry to the other wire face (src/e2b/interpreter/). */
export interface ExecutionModule extends ServiceModule {
  readonly contexts: ContextRegistry;
}

export function createExecutionServices(deps: ServiceDeps): ExecutionModule {
  const { config, log } = deps;
  // Connection files, sockets and cells of kernels a crashed agent left behind.
  void removeStaleRuntimeDirectories().then(
    (removed) => removed.length > 0 && log.info({ removed }, "removed kernel directories of agents no longer running"),
    (err: Error) => log.warn({ err: err.message }, "could not look for kernel directories of earlier agents"),
  );
  const catalog = new KernelCatalog(loadLanguageTable(config.languagesFile), {
    builtins: { bash: bashDriverFactory, jshell: jshellDriverFactory },
    log,
  });
  const poolUser = lookupUser(config.defaultUser);
  const pool =
    config.kernelPoolSize > 0 && poolUser !== undefined
      ? new KernelPool({ size: config.kernelPoolSize, language: POOL_LANGUAGE, user: poolUser, catalog, log })
      : undefined;
  pool?.start();
  const contexts = new ContextRegistry(catalog, pool, log, deps.metrics.kernelEvents, config.maxContexts, () => deps.settings.envVars);
  deps.metrics.observe("contexts", "Execution contexts alive", () => contexts.size);
  const executeDeps = { contexts, defaultTimeoutMs: config.executionTimeoutMs, log, settings: deps.settings };

  return {
    contexts,
    implementations: [
      implement(ExecutionService, {
        execute: (req, ctx) => execute(req, ctx, executeDeps),
      }),
      implement(ContextService, {
        createContext: (req, ctx) => createContext(req, ctx, contexts),
        destroyContext: (req, ctx) => destroyContext(req, ctx, contexts),
      }),
    ],
    dispose: async () => {
      await Promise.allSettled([pool?.dispose(), contexts.dispose()]);
    },
  };
}
