/**
 * What /proc/<pid>/stat says of a process: its state letter, which tells a zombie (ended, not yet
 * reaped) from a live process, and its start time, which tells it from a later process that got
 * the same pid.
 */
import { readFileSync } from "node:fs";

export interface ProcStat {
  readonly state: string;
  /** Field 22, in clock ticks since boot. */
  readonly startTime: string;
}

export function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 (the command name, in parentheses) may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, startTime: fields[19]! };
  } catch {
    return undefined;
  }
}

/**
 * Notes a child's start time now and returns a test of whether that process has ended: gone, a
 * zombie, or its pid now another's. The test sees an end before the supervisor reports it (the
 * reap happens on another thread, and output is drained after it), which is what lets a caller
 * tell "died before my request" from "died during it". Without /proc it never says ended.
 */
export function endProbe(pid: number): () => boolean {
  const start = procStat(pid)?.startTime;
  if (start === undefined) return () => false;
  return () => {
    const now = procStat(pid);
    return now === undefined || now.startTime !== start || now.state === "Z" || now.state === "X";
  };
}
