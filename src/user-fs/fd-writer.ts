/**
 * Writing to a descriptor the writer does not own. `fs.createWriteStream({ fd, autoClose: false })`
 * still closes its descriptor when it is destroyed (as `pipeline` does on any error), and the
 * owner's own close then closes the same number a second time, by then perhaps another request's
 * file or socket (found by the fuzz campaign: a scandir failing with EBADF, an abort in libuv).
 * This writer never closes, and says when no write is in flight, so that the owner closes only
 * once the kernel is done with the descriptor.
 */
import { read, write, writev } from "node:fs";
import { Writable } from "node:stream";

/** Writes all of `chunk` at `position` (a short write is continued, as write(2) allows). */
function writeAll(fd: number, chunk: Uint8Array, position: number, done: (err: Error | null) => void): void {
  write(fd, chunk, 0, chunk.length, position, (err, written) => {
    if (err) return done(err);
    if (written === chunk.length) return done(null);
    writeAll(fd, chunk.subarray(written), position + written, done);
  });
}

/** Writes all of `chunks` at `position` in as few writev(2) calls as the kernel allows. */
function writevAll(fd: number, chunks: readonly Uint8Array[], position: number, done: (err: Error | null) => void): void {
  writev(fd, chunks as Uint8Array[], position, (err, written) => {
    if (err) return done(err);
    let rest = written;
    let first = 0;
    while (first < chunks.length && rest >= chunks[first]!.length) rest -= chunks[first++]!.length;
    if (first === chunks.length) return done(null);
    const remaining = [chunks[first]!.subarray(rest), ...chunks.slice(first + 1)];
    writevAll(fd, remaining, position + written, done);
  });
}

export class FdWriter extends Writable {
  private position = 0;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly fd: number,
    highWaterMark: number,
  ) {
    super({ highWaterMark, decodeStrings: true });
  }

  /** Bytes written so far. */
  get bytesWritten(): number {
    return this.position;
  }

  /** Resolves once no write is in flight (the stream may have been destroyed meanwhile). */
  settled(): Promise<void> {
    return this.inFlight;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const at = this.position;
    this.position += chunk.length;
    this.inFlight = new Promise((resolve) => {
      writeAll(this.fd, chunk, at, (err) => {
        resolve();
        callback(err);
      });
    });
  }

  /**
   * What arrived while the previous write was in flight goes in one system call, without first
   * being copied into one buffer: a fast sender's small chunks become few large writes.
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const buffers = chunks.map(({ chunk }) => chunk);
    const at = this.position;
    for (const buffer of buffers) this.position += buffer.length;
    this.inFlight = new Promise((resolve) => {
      writevAll(this.fd, buffers, at, (err) => {
        resolve();
        callback(err);
      });
    });
  }
}

/** Copies everything readable from `from` (from its start) to `to`, through one reused buffer. */
export async function copyDescriptor(from: number, to: number, bufferBytes: number): Promise<void> {
  const buffer = Buffer.allocUnsafe(bufferBytes);
  for (let position = 0; ; ) {
    const got = await new Promise<number>((resolve, reject) => read(from, buffer, 0, bufferBytes, position, (err, n) => (err ? reject(err) : resolve(n))));
    if (got === 0) return;
    await new Promise<void>((resolve, reject) => writeAll(to, buffer.subarray(0, got), position, (err) => (err ? reject(err) : resolve())));
    position += got;
  }
}
