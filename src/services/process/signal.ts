import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { SendSignalResponseSchema, Signal, type SendSignalRequest, type SendSignalResponse } from "../../gen/sandboxagent/api_pb.js";
import { actingUser } from "./owner.js";
import type { ProcessTable } from "./table.js";

const SIGNALS: Readonly<Partial<Record<Signal, NodeJS.Signals>>> = {
  [Signal.SIGTERM]: "SIGTERM",
  [Signal.SIGKILL]: "SIGKILL",
};

/** Signals the process's whole group: whatever it started goes down with it. */
export function sendSignal(table: ProcessTable, req: SendSignalRequest, ctx: HandlerContext): SendSignalResponse {
  const caller = actingUser(ctx);
  const signal = SIGNALS[req.signal];
  if (signal === undefined) throw new ConnectError(`unsupported signal ${req.signal}: use SIGNAL_SIGTERM or SIGNAL_SIGKILL`, Code.InvalidArgument);
  table.find(req.process, { exited: false, caller }).signal(signal);
  return create(SendSignalResponseSchema);
}
