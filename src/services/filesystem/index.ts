import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Filesystem } from "../../gen/sandboxagent/api_pb.js";
import type { ServiceDeps } from "../index.js";
import { stat } from "./stat.js";

const notYet = (): never => {
  throw new ConnectError("not implemented yet", Code.Unimplemented);
};

export function createFilesystemService(_deps: ServiceDeps): { impl: ServiceImpl<typeof Filesystem>; dispose: () => Promise<void> } {
  return {
    impl: {
      stat,
      makeDir: notYet,
      move: notYet,
      listDir: notYet,
      remove: notYet,
      watchDir: notYet,
      createWatcher: notYet,
      getWatcherEvents: notYet,
      removeWatcher: notYet,
    },
    dispose: async () => {},
  };
}
