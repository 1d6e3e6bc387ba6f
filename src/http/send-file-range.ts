/**
 * The body of a download: bytes of an open file written to the response from two buffers that are
 * reused for the whole file. A read stream allocates a new buffer for every chunk, and the V8 heap
 * counts that memory: a 1 GiB download made the agent run a full collection every 40 ms (a quarter
 * of its time marking a heap that had not changed), which halved the rate a bare Node server
 * reaches. Here one buffer is read into while the other is being written, and a buffer is read
 * into again only once the response has written it out (its write callback), so memory stays at
 * two buffers whatever the speed of the client; a slow client slows the reads (backpressure).
 */
import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { read } from "node:fs";

type AnyResponse = ServerResponse | Http2ServerResponse;

/** Large reads keep the syscall count low; two of them per download in flight is the memory cost. */
export const CHUNK_BYTES = 256 * 1024;

function readAt(fd: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, 0, length, position, (err, bytes) => (err ? reject(err) : resolve(bytes))));
}

/** Resolves once `res` has written `chunk` out; rejects if the response is gone first. */
function writeOut(res: AnyResponse, chunk: Buffer, gone: Promise<never>): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    // The two response kinds take the same arguments; their overloads do not unify.
    (res as ServerResponse).write(chunk, (err) => (err ? reject(err) : resolve()));
  });
  return Promise.race([written, gone]);
}

/**
 * Writes `length` bytes of `fd` from `start` to `res` (headers already set) and ends it. Resolves
 * with the bytes written, whatever happens: a client that leaves, a failed read or a file that
 * shrank destroys the response (the client sees a body cut short of its Content-Length), which is
 * all that can be said once the headers are out. Never closes `fd`.
 */
export async function sendFileRange(fd: number, start: number, length: number, res: AnyResponse): Promise<number> {
  let sent = 0;
  const gone = new Promise<never>((_, reject) => {
    res.once("close", () => reject(new Error("the client went away")));
  });
  gone.catch(() => undefined); // raced against every write; nobody else awaits it
  const buffers = [Buffer.allocUnsafeSlow(Math.min(CHUNK_BYTES, length)), Buffer.allocUnsafeSlow(Math.min(CHUNK_BYTES, Math.max(0, length - CHUNK_BYTES)))];
  let writing: Promise<void> | undefined;
  try {
    for (let turn = 0; sent < length; turn ^= 1) {
      const buffer = buffers[turn]!;
      // The buffer read into now was written two turns ago; that write was awaited last turn.
      const bytes = await readAt(fd, buffer, Math.min(buffer.length, length - sent), start + sent);
      if (bytes === 0) throw new Error("file shrank while it was being sent");
      await writing;
      writing = writeOut(res, bytes === buffer.length ? buffer : buffer.subarray(0, bytes), gone);
      // Awaited next turn, after the next read: a failure meanwhile must not count as unhandled.
      writing.catch(() => undefined);
      sent += bytes;
    }
    await writing;
    await Promise.race([new Promise<void>((resolve) => res.end(resolve)), gone]);
  } catch (err) {
    res.destroy(err as Error);
  }
  return sent;
}
