import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Process } from "../../gen/sandboxagent/api_pb.js";
import type { ServiceDeps } from "../index.js";

const notYet = (): never => {
  throw new ConnectError("not implemented yet", Code.Unimplemented);
};

export function createProcessService(_deps: ServiceDeps): { impl: ServiceImpl<typeof Process>; dispose: () => Promise<void> } {
  return {
    impl: {
      list: notYet,
      connect: notYet,
      start: notYet,
      update: notYet,
      streamInput: notYet,
      sendInput: notYet,
      sendSignal: notYet,
      closeStdin: notYet,
    },
    dispose: async () => {},
  };
}
