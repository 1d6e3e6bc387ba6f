/** The socketpairs of a child's stdio (native/child-fds explains why the main thread makes them). */
import { closeSync } from "node:fs";
import { createRequire } from "node:module";

interface ChildFds {
  socketpair(): [number, number];
}

const native = createRequire(import.meta.url)("../../native/child-fds/build/Release/child_fds.node") as ChildFds;

/** [the agent's end, the child's end]; both close-on-exec. */
export function socketpair(): [number, number] {
  return native.socketpair();
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
