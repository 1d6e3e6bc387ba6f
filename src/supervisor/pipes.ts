/**
 * A child with stdin, stdout and stderr on socketpairs, forked off the event loop (fork-thread.ts).
 * The agent's ends are read and written here, on the main loop, as net.Sockets.
 */
import { Socket, type OnReadOpts, type SocketConstructorOpts } from "node:net";
import { closeQuietly, socketpair } from "./child-fds.js";
import { InputClosedError, type ChildHooks, type Exit, type RawChild, type SpawnRequest } from "./child.js";
import { forkThread, type RawExit } from "./fork-thread.js";
import { OutputReads } from "./headroom.js";
import { POST_EXIT_DRAIN_MS } from "./rules.js";

/** Makes the pairs, forks, and closes the child's ends in the agent whatever happens. */
async function forkWithPairs(
  request: SpawnRequest,
  withStdin: boolean,
  onExit: (exit: RawExit) => void,
): Promise<{ pid: number; agentEnds: (number | undefined)[] }> {
  const pairs: [number, number][] = [];
  try {
    for (let i = withStdin ? 0 : 1; i < 3; i++) pairs.push(socketpair());
  } catch (err) {
    for (const [a, b] of pairs) [a, b].forEach(closeQuietly);
    throw err;
  }
  const childEnds = pairs.map(([, child]) => child);
  const agentEnds = pairs.map(([agent]) => agent);
  const stdio = withStdin ? childEnds : ["ignore" as const, ...childEnds];
  const { launch } = request;
  try {
    const pid = await forkThread.start(
      {
        file: launch.file,
        args: launch.args,
        cwd: request.cwd,
        env: request.env,
        stdio,
        ...(launch.uid !== undefined ? { uid: launch.uid } : {}),
        ...(launch.gid !== undefined ? { gid: launch.gid } : {}),
      },
      onExit,
    );
    return { pid, agentEnds: withStdin ? agentEnds : [undefined, ...agentEnds] };
  } catch (err) {
    agentEnds.forEach(closeQuietly);
    throw err;
  } finally {
    childEnds.forEach(closeQuietly);
  }
}

function outputSocket(fd: number, onData: (chunk: Buffer) => void): Socket {
  const reads = new OutputReads();
  // The constructor takes `onread` as net.connect does; @types/node lists it for connect only.
  const options: SocketConstructorOpts & { onread: OnReadOpts } = {
    fd,
    readable: true,
    writable: false,
    onread: {
      buffer: reads.target,
      callback: (bytes) => {
        onData(reads.take(bytes));
        return true;
      },
    },
  };
  return new Socket(options);
}

export async function spawnPipes(request: SpawnRequest, withStdin: boolean, hooks: ChildHooks): Promise<RawChild> {
  let rawExit: RawExit | undefined;
  let onRawExit: (exit: RawExit) => void = (exit) => {
    rawExit = exit; // reaped before the start was even reported: handled once wired below
  };
  const { pid, agentEnds } = await forkWithPairs(request, withStdin, (exit) => onRawExit(exit));
  const [stdinFd, stdoutFd, stderrFd] = agentEnds;
  const stdin = stdinFd !== undefined ? new Socket({ fd: stdinFd, readable: false, writable: true }) : undefined;
  const stdout = outputSocket(stdoutFd!, (chunk) => hooks.onOutput("stdout", chunk));
  const stderr = outputSocket(stderrFd!, (chunk) => hooks.onOutput("stderr", chunk));

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
  onRawExit = ({ code, signal }) => {
    hooks.onReaped?.();
    exit = signal !== null ? { kind: "signaled", signal } : { kind: "exited", code: code ?? 0 };
    stdin?.destroy();
    armDrainTimer();
    settle();
  };
  if (rawExit !== undefined) onRawExit(rawExit);

  return {
    pid,
    kind: "pipe",
    released,
    write: (data) =>
      new Promise<void>((resolve, reject) => {
        if (stdin === undefined || !stdin.writable) {
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
  };
}
