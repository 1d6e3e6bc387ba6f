/**
 * What is known of a process by its pid: /proc/<pid>/stat's state letter and start time (which
 * tells it from a later process that got the same pid), and whether a child has been reaped.
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
 * Whether a child of the agent has ended and been reaped, though its exit may not be reported yet
 * (the fork thread reaps it, and its output is drained after that): what lets a caller tell "died
 * before my request" from "died during it". Signal 0 costs one syscall; reading /proc/<pid>/stat
 * cost 85 µs per execution with 16 contexts busy. A zombie counts as running: the fork thread
 * reaps within a moment of the death, and that moment is not covered.
 */
export function reaped(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}
