/**
 * The RPC services, assembled in one table of contents. Each service module returns its
 * implementation and a dispose function that releases what it holds (watchers, processes, kernels).
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { Filesystem } from "../gen/sandboxagent/api_pb.js";
import { createFilesystemService } from "./filesystem/index.js";

export interface ServiceDeps {
  readonly config: Config;
  readonly log: Logger;
}

export interface Services {
  readonly routes: (router: ConnectRouter) => void;
  readonly dispose: () => Promise<void>;
}

export function createServices(deps: ServiceDeps): Services {
  const filesystem = createFilesystemService(deps);
  return {
    routes: (router) => {
      router.service(Filesystem, filesystem.impl);
    },
    dispose: async () => {
      await filesystem.dispose();
    },
  };
}
