/** A child with stdin, stdout and stderr pipes, leading its own session and process group. */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { Code } from "@connectrpc/connect";
import { errnoOf } from "../../errors.js";
import { InputClosedError, type Child, type ChildHooks, type SpawnRequest } from "./child.js";
import type { Exit } from "./exit-status.js";
import { SpawnError } from "./executable.js";
import { POST_EXIT_DRAIN_MS } from "./limits.js";
import { launchIds } from "../../user-spawn.js";

function spawnFailure(err: unknown, cmd: string): SpawnError {
  const errno = errnoOf(err);
  if (errno === "ENOENT") return new SpawnError(`fork/exec ${cmd}: no such file or directory`, Code.NotFound);
  if (errno === "EACCES" || errno === "EPERM") return new SpawnError(`fork/exec ${cmd}: permission denied`, Code.PermissionDenied);
  if (errno === "E2BIG") return new SpawnError(`fork/exec ${cmd}: argument list too long`, Code.InvalidArgument);
  if (errno === "EAGAIN" || errno === "ENOMEM" || errno === "EMFILE" || errno === "ENFILE") {
    return new SpawnError(`fork/exec ${cmd}: ${(err as Error).message}`, Code.ResourceExhausted);
  }
  return new SpawnError(`fork/exec ${cmd}: ${(err as Error)?.message ?? String(err)}`, Code.Internal);
}

export function spawnPipes(request: SpawnRequest, hooks: ChildHooks): Promise<Child> {
  const { launch } = request;
  let child: ChildProcessByStdio<Writable | null, Readable, Readable>;
  try {
    child = spawn(launch.file, [...launch.args], {
      cwd: request.cwd,
      env: launch.env,
      // setsid(): the child leads a new session and process group, so a signal to -pid reaches
      // everything it starts, and it has no controlling terminal of ours.
      detached: true,
      stdio: [request.stdin ? "pipe" : "ignore", "pipe", "pipe"],
      ...launchIds(launch),
    }) as ChildProcessByStdio<Writable | null, Readable, Readable>; // stdout and stderr are always pipes
  } catch (err) {
    // Some failures (E2BIG, EINVAL) are thrown at once…
    return Promise.reject(spawnFailure(err, request.cmd));
  }
  const pid = child.pid;
  if (pid === undefined) {
    // …the others come as an 'error' event on the next tick.
    return new Promise((_, reject) => child.once("error", (err) => reject(spawnFailure(err, request.cmd))));
  }
  child.on("error", () => {}); // later errors (a signal to a reaped child) change nothing here
  const { stdin, stdout, stderr } = child;

  let exit: Exit | undefined;
  let drained = false;
  let paused = false;
  let drainTimer: NodeJS.Timeout | undefined;
  let openOutputs = 2;
  let reported = false;
  let markReleased: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    markReleased = resolve;
  });
  const settle = (): void => {
    if (exit === undefined) return;
    if (!reported && (openOutputs === 0 || drained)) {
      reported = true;
      hooks.onExit(exit);
    }
    if (openOutputs === 0) markReleased();
  };

  stdout.on("data", (chunk: Buffer) => hooks.onOutput("stdout", chunk));
  stderr.on("data", (chunk: Buffer) => hooks.onOutput("stderr", chunk));
  for (const stream of [stdout, stderr]) {
    stream.on("error", () => {});
    stream.once("close", () => {
      openOutputs--;
      settle();
    });
  }
  stdin?.on("error", () => {}); // EPIPE when the child exits or closes its stdin: reported by write()

  // Output written just before the exit may still be in the pipes; a grandchild that inherited
  // them may keep them open forever. Wait for the first, not for the second: reading goes on for a
  // short while after the exit — counted only while reading, since flow control may have paused it
  // with the last of the output still in the pipe.
  const armDrainTimer = (): void => {
    if (exit === undefined || paused || drained || drainTimer !== undefined) return;
    drainTimer = setTimeout(() => {
      drained = true;
      settle();
    }, POST_EXIT_DRAIN_MS);
    drainTimer.unref();
  };
  child.once("exit", (code, signal) => {
    exit = signal !== null ? { kind: "signaled", signal } : { kind: "exited", code: code ?? 0 };
    stdin?.destroy();
    armDrainTimer();
    settle();
  });

  return Promise.resolve({
    pid,
    kind: "pipe",
    released,
    write: (data) =>
      new Promise<void>((resolve, reject) => {
        if (stdin === null) {
          reject(new InputClosedError(`process ${pid} was started without stdin (stdin: false)`));
          return;
        }
        if (!stdin.writable) {
          reject(new InputClosedError(`stdin of process ${pid} is closed`));
          return;
        }
        stdin.write(data, (err) => (err ? reject(new InputClosedError(`stdin of process ${pid} is closed: ${err.message}`)) : resolve()));
      }),
    pause: () => {
      paused = true;
      clearTimeout(drainTimer);
      drainTimer = undefined;
      stdout.pause();
      stderr.pause();
    },
    resume: () => {
      paused = false;
      stdout.resume();
      stderr.resume();
      armDrainTimer();
    },
    closeInput: () => {
      stdin?.end();
    },
    resize: () => {
      throw new Error("not a terminal");
    },
    destroy: () => {
      stdin?.destroy();
      stdout.destroy();
      stderr.destroy();
    },
  });
}
