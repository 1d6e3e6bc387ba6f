/**
 * The Filesystem service: one file per RPC (stat, make-dir, move, list-dir, remove, watch-dir,
 * watchers), sharing entry-info.ts for what an entry looks like and watch.ts for how a directory
 * is watched.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { EnvdFilesystem, envdFilesystem } from "../../e2b/envd-services.js";
import { Filesystem } from "../../gen/sandboxagent/api_pb.js";
import { implement, type ServiceDeps, type ServiceModule } from "../service-module.js";
import { listDir } from "./list-dir.js";
import { makeDir } from "./make-dir.js";
import { move } from "./move.js";
import { remove } from "./remove.js";
import { stat } from "./stat.js";
import { WatchGroup } from "./watch.js";
import { watchDirHandler } from "./watch-dir.js";
import { PolledWatchers, watcherHandlers } from "./watchers.js";

export function createFilesystemService(deps: ServiceDeps): ServiceModule {
  const watches = new WatchGroup();
  deps.metrics.observe("watchers", "File watchers open (streamed and polled)", () => watches.size);
  const polled = new PolledWatchers({ watches, maxEvents: deps.config.watcherMaxEvents, idleMs: deps.config.watcherIdleMs });
  const impl: ServiceImpl<typeof Filesystem> = {
    stat,
    makeDir,
    move,
    listDir,
    remove,
    watchDir: watchDirHandler({ watches, maxQueued: deps.config.watcherMaxEvents, defaultTimeoutMs: deps.config.watchDefaultTimeoutMs }),
    ...watcherHandlers(polled),
  };
  return {
    // One implementation, served under the agent's name and under envd's (src/e2b/).
    implementations: [implement(Filesystem, impl), implement(EnvdFilesystem, envdFilesystem(impl))],
    dispose: async () => {
      await polled.closeAll();
      // Ends every WatchDir stream still open (with `unavailable`) and releases its inotify watches.
      await watches.closeAll();
    },
  };
}
