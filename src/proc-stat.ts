/**
 * What is known of a process by its pid: its start time (which tells it from a later process that
 * got the same pid), and whether a child of the agent has been reaped.
 */
import { readFileSync } from "node:fs";

/** /proc/<pid>/stat field 22, in clock ticks since boot; undefined without /proc or the process. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 (the command name, in parentheses) may itself hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether a child of the agent has ended and been reaped, though its exit may not be reported yet
 * (the supervisor drains its output first): what lets a caller tell "died before my request" from
 * "died during it". Signal 0 costs one syscall; reading /proc/<pid>/stat cost 85 µs per execution
 * with 16 contexts busy. A zombie counts as running: it is reaped as soon as its SIGCHLD is
 * handled, and that moment is not covered.
 */
export function reaped(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}
