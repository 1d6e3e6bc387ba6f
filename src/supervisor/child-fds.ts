/**
 * The socketpairs of a child's stdio (native/child-fds explains why the main thread makes them),
 * reaping a child whose fork thread ended, and holding a terminal open (pty.ts).
 */
import { closeSync } from "node:fs";
import { createRequire } from "node:module";

interface ChildFds {
  socketpair(): [number, number];
  reap(pid: number): [number, number] | null;
  dup(fd: number): number;
}

const native = createRequire(import.meta.url)("../../native/child-fds/build/Release/child_fds.node") as ChildFds;

/** [the agent's end, the child's end]; both close-on-exec. */
export function socketpair(): [number, number] {
  return native.socketpair();
}

/** A close-on-exec duplicate of `fd`: the file stays open until both are closed. */
export function dup(fd: number): number {
  return native.dup(fd);
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** waitpid(pid, WNOHANG): undefined while it runs; else how it ended (-1 where not applicable). */
export function reap(pid: number): { code: number; signal: number } | undefined {
  const status = native.reap(pid);
  return status === null ? undefined : { code: status[0], signal: status[1] };
}
