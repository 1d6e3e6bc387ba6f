/**
 * How a process ended, in the words Go's os.ProcessState uses (`exit status 3`, `signal: killed`),
 * which is what E2B's envd reports and what clients show to people.
 */
import { constants } from "node:os";
import { endEvent } from "./events.js";
import type { ProcessEvent } from "../../gen/sandboxagent/api_pb.js";
import type { Exit } from "../../supervisor/child.js";

const GO_SIGNAL_NAMES: Readonly<Record<number, string>> = {
  1: "hangup",
  2: "interrupt",
  3: "quit",
  4: "illegal instruction",
  5: "trace/breakpoint trap",
  6: "aborted",
  7: "bus error",
  8: "floating point exception",
  9: "killed",
  10: "user defined signal 1",
  11: "segmentation fault",
  12: "user defined signal 2",
  13: "broken pipe",
  14: "alarm clock",
  15: "terminated",
  16: "stack fault",
  17: "child exited",
  18: "continued",
  19: "stopped (signal)",
  20: "stopped",
  21: "stopped (tty input)",
  22: "stopped (tty output)",
  23: "urgent I/O condition",
  24: "CPU time limit exceeded",
  25: "file size limit exceeded",
  26: "virtual timer expired",
  27: "profiling timer expired",
  28: "window changed",
  29: "I/O possible",
  30: "power failure",
  31: "bad system call",
};

export function signalNumber(signal: NodeJS.Signals | number): number {
  return typeof signal === "number" ? signal : constants.signals[signal];
}

export function signalDescription(signal: NodeJS.Signals | number): string {
  const n = signalNumber(signal);
  return GO_SIGNAL_NAMES[n] ?? `signal ${n}`;
}

export type { Exit } from "../../supervisor/child.js";

/** The end event for a process that ran; `error` says what went wrong around it (a timeout). */
export function exitEvent(exit: Exit, error?: string): ProcessEvent {
  if (exit.kind === "exited") {
    return endEvent({ exitCode: exit.code, exited: true, status: `exit status ${exit.code}`, error });
  }
  // Go reports -1 for a process that did not exit on its own; the SDKs show it as such.
  return endEvent({ exitCode: -1, exited: false, status: `signal: ${signalDescription(exit.signal)}`, error });
}
