/**
 * The one shape every RPC service module has: it is built from the same dependencies, says which
 * services it implements, and releases what it holds (watchers, processes, kernels) on dispose.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { SandboxSettings } from "../sandbox-settings.js";

export interface ServiceDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Token, default user and workdir, sandbox env vars: what POST /init may change while the agent runs. */
  readonly settings: SandboxSettings;
}

/** A service descriptor paired with its implementation, checked against each other by type. */
export interface Implementation {
  readonly service: DescService;
  readonly register: (router: ConnectRouter) => void;
}

export function implement<S extends DescService>(service: S, impl: ServiceImpl<S>): Implementation {
  return { service, register: (router) => router.service(service, impl) };
}

export interface ServiceModule {
  readonly implementations: readonly Implementation[];
  /** Server-streaming methods whose handlers may encode frames themselves (connect-fixes/preencoded.ts). */
  readonly preencoded?: readonly DescMethod[];
  readonly dispose: () => Promise<void>;
}

export type ServiceFactory = (deps: ServiceDeps) => ServiceModule;
