/**
 * The Process service: start commands as the caller (pipes or a terminal), attach to them, feed
 * them input, resize and signal them. Handlers share one process table; dispose kills what is
 * still running.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { EnvdProcess, envdProcess } from "../../e2b/envd-services.js";
import { Process } from "../../gen/sandboxagent/api_pb.js";
import { implement, type ServiceDeps, type ServiceModule } from "../service-module.js";
import { connect } from "./connect.js";
import { closeStdin, sendInput, streamInput } from "./input.js";
import { list } from "./list.js";
import { sendSignal } from "./signal.js";
import { start } from "./start.js";
import { ProcessTable } from "./table.js";
import { update } from "./update.js";

export function createProcessService(deps: ServiceDeps): ServiceModule {
  const table = new ProcessTable();
  deps.metrics.observe("processes", "Processes running", () => table.running().length);
  const impl: ServiceImpl<typeof Process> = {
    list: (req, ctx) => list(table, req, ctx),
    connect: (req, ctx) => connect(table, req, ctx),
    start: (req, ctx) => start(table, deps.settings, req, ctx),
    update: (req, ctx) => update(table, req, ctx),
    streamInput: (requests, ctx) => streamInput(table, requests, ctx),
    sendInput: (req, ctx) => sendInput(table, req, ctx),
    sendSignal: (req, ctx) => sendSignal(table, req, ctx),
    closeStdin: (req, ctx) => closeStdin(table, req, ctx),
  };
  return {
    // One implementation, served under the agent's name and under envd's (src/e2b/).
    implementations: [implement(Process, impl), implement(EnvdProcess, envdProcess(impl))],
    // envd's face carries the same messages under other names (e2b/bridge.ts): its frames are the same bytes.
    preencoded: [Process.method.start, Process.method.connect, EnvdProcess.method.start, EnvdProcess.method.connect],
    dispose: () => table.dispose(),
  };
}
