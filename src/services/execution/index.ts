import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { ContextService, ExecutionService } from "../../gen/sandboxagent/api_pb.js";
import type { ServiceDeps } from "../index.js";

const notYet = (): never => {
  throw new ConnectError("not implemented yet", Code.Unimplemented);
};

/** ExecutionService and ContextService share one kernel manager, so they are built together. */
export function createExecutionServices(_deps: ServiceDeps): {
  execution: ServiceImpl<typeof ExecutionService>;
  context: ServiceImpl<typeof ContextService>;
  dispose: () => Promise<void>;
} {
  return {
    execution: { execute: notYet },
    context: { createContext: notYet, destroyContext: notYet },
    dispose: async () => {},
  };
}
