/**
 * Where the agent's log lines go when it runs as a program: stdout, written off the event loop.
 * Node writes to a pipe or a file on stdout synchronously, one system call per line, and the one
 * line each request logs was the largest single cost of a small RPC (about a sixth of a Stat's
 * time in the agent, profiled with the bench reading the pipe). A file stream on descriptor 1
 * writes from the thread pool, and lines logged while a write is in flight go together in the
 * next one, so a burst of requests costs a few writes. Lines still buffered are written by `end`,
 * which the agent awaits before it exits.
 */
import { createWriteStream, type WriteStream } from "node:fs";

export function stdoutLogStream(): WriteStream {
  // The path is not opened when a descriptor is given; autoClose off: stdout is not ours to close.
  const stream = createWriteStream("/dev/stdout", { fd: 1, autoClose: false });
  // A reader that went away (EPIPE) takes the log with it, not the agent: the error is the stream's
  // last event, and lines written after it are dropped.
  stream.on("error", () => undefined);
  return stream;
}

/** Resolves once every line written so far is out. */
export function endLogStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    stream.once("error", () => resolve());
    stream.end(() => resolve());
  });
}
