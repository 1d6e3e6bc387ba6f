/**
 * The last output of a terminal, rescued from node-pty's exit handling. When the child exits
 * before reading the terminal has reached its end, node-pty (UnixTerminal, DESTROY_SOCKET_TIMEOUT_MS)
 * destroys the terminal 200 ms later, and whatever was not read by then is dropped: the bytes
 * already read but held while flow control paused the stream, and the bytes still in the kernel.
 * Both happen: reading is paused while every client is behind, and on Linux the event loop is
 * sometimes never woken for a terminal's last output and hang-up (the soak lost `echo` output in
 * about one short PTY session in a thousand). So just before that destroy, the rest is read here.
 *
 * terminalClosed tells from the same internals whether node-pty has closed the terminal.
 *
 * This reaches into node-pty's internals (`_socket`, `_fd`; node-pty is pinned in package.json);
 * test/unit/process/pty-exit-output.test.ts fails if they change.
 */
import { readSync } from "node:fs";
import type { Readable } from "node:stream";
import type { IPty } from "node-pty";

/** A grandchild still writing to the terminal could keep the rest coming for ever. */
const REST_MAX_BYTES = 1024 * 1024;

interface PtyInternals {
  readonly _socket?: Readable;
  readonly _fd?: number;
}

/** Whether node-pty has closed the terminal (it does so at EIO, before the exit is reported). */
export function terminalClosed(term: IPty): boolean {
  const { _socket: socket } = term as unknown as PtyInternals;
  return socket === undefined || socket.destroyed;
}

export function readRestBeforeDestroy(term: IPty, onOutput: (chunk: Buffer) => void): void {
  const { _socket: socket, _fd: fd } = term as unknown as PtyInternals;
  if (socket === undefined || typeof fd !== "number") return;
  const destroy = socket.destroy.bind(socket);
  socket.destroy = (error?: Error): Readable => {
    // With an error, the stream is failing (EIO: the end was reached): nothing is left to read.
    // A destroyed socket's descriptor may already belong to something else: never read it.
    if (error === undefined && !socket.destroyed) {
      // Chunks the stream holds while paused; read() hands each to the 'data' listeners, in order.
      while (socket.read() !== null);
      readKernelRest(fd, onOutput);
    }
    return destroy(error);
  };
}

/** Reads what the terminal still holds; the descriptor is non-blocking, so EAGAIN or EIO ends it. */
function readKernelRest(fd: number, onOutput: (chunk: Buffer) => void): void {
  const buffer = Buffer.allocUnsafe(64 * 1024);
  for (let total = 0; total < REST_MAX_BYTES; ) {
    let bytes: number;
    try {
      bytes = readSync(fd, buffer, 0, buffer.length, null);
    } catch {
      return; // EAGAIN: nothing more for now; EIO: the other side is closed and everything was read
    }
    if (bytes === 0) return;
    onOutput(Buffer.from(buffer.subarray(0, bytes)));
    total += bytes;
  }
}
