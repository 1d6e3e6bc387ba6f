/**
 * Kernels and drivers start with their stdio and nothing else of the agent's.
 *
 * Node opens everything with O_CLOEXEC, and so do libuv and ZeroMQ, but not every descriptor the
 * agent holds is its own making: node-pty's forkpty() leaves each terminal's master side (another
 * user's terminal, possibly) inheritable, and descriptors the agent itself inherited without
 * O_CLOEXEC stay so. Node cannot set FD_CLOEXEC on them nor close descriptors in a child between
 * fork and exec, so the program is started through bash, which closes every descriptor above
 * stderr and then execs it: same pid, same arguments, nothing else inherited.
 */
import { accessSync, constants } from "node:fs";

const CLOSE_AND_EXEC = `for fd in /proc/self/fd/*; do fd=\${fd##*/}; if [[ $fd =~ ^[0-9]+$ ]] && (( fd > 2 )); then eval "exec $fd>&-" 2>/dev/null; fi; done; exec "$@"`;

const BASH_CANDIDATES = ["/bin/bash", "/usr/bin/bash"];
let bashPath: string | undefined | null = null;

function bash(): string {
  if (bashPath === null) {
    bashPath = BASH_CANDIDATES.find((path) => {
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  }
  if (bashPath === undefined) throw new Error("bash is not installed: the agent needs it to start kernels without its own descriptors");
  return bashPath;
}

/** `command args…` run with only descriptors 0, 1 and 2 open. */
export function withOnlyStdio(command: string, args: readonly string[]): { readonly command: string; readonly args: readonly string[] } {
  return { command: bash(), args: ["-c", CLOSE_AND_EXEC, "bash", command, ...args] };
}
