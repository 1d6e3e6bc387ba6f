/**
 * How a child's output is read, and the room kept in front of each large chunk.
 *
 * libuv would read a stream 64 KiB at a time into a fresh buffer, then shrink it with a copy. Here
 * small reads go into one buffer shared by every child (each read is handed on before the next
 * starts) and are copied out at their exact size. Once a child floods (a read of 64 KiB or more),
 * its reads go straight into memory of their own, up to 256 KiB at a time (more than a
 * socketpair holds by default), and that memory becomes the chunk: no copy at all.
 *
 * Either way a large chunk has 32 spare bytes in front of it, so whoever sends it on can write its
 * frame's header there and send header and data as one buffer without copying the data again
 * (services/process/output-frame.ts). The room is given out once: a chunk framed a second time (a
 * replay, another subscriber) is copied as before.
 */

/** Bytes kept in front of a chunk: enough for a Connect envelope and three nested tags. */
export const HEADROOM_BYTES = 32;

/** Below this, a chunk comes from Node's shared pool: a buffer of its own costs more than a copy. */
const MIN_BYTES = 16 * 1024;

/** A read at least this large means the child writes faster than the agent reads. */
const FLOOD_BYTES = 64 * 1024;

/** What a flooding child's read may take. A chunk keeps at most twice the memory it needs (see take). */
const OWN_READ_BYTES = 256 * 1024;

/** Where reads go while no child floods; each is copied out before the next read. */
const SHARED = Buffer.allocUnsafe(1 << 20);

/** The memory of chunks whose room in front is still free. */
const unclaimed = new WeakSet<ArrayBufferLike>();

/** A copy of `source` (which may be reused once this returns), with room in front when large. */
export function copyWithHeadroom(source: Uint8Array): Buffer {
  if (source.length < MIN_BYTES) return Buffer.from(source);
  const memory = Buffer.allocUnsafeSlow(HEADROOM_BYTES + source.length);
  memory.set(source, HEADROOM_BYTES);
  unclaimed.add(memory.buffer);
  return memory.subarray(HEADROOM_BYTES);
}

/**
 * The `bytes` in front of `chunk` and the chunk itself as one view, when `chunk` starts where
 * this module put it and its room is still free; the room is then taken. Undefined otherwise.
 */
export function claimHeadroom(chunk: Uint8Array, bytes: number): Uint8Array | undefined {
  if (bytes > HEADROOM_BYTES || chunk.byteOffset !== HEADROOM_BYTES || !unclaimed.delete(chunk.buffer)) return undefined;
  return new Uint8Array(chunk.buffer, HEADROOM_BYTES - bytes, bytes + chunk.length);
}

/** The reads of one output stream: `target` for net.Socket's `onread.buffer`, `take` in its callback. */
export class OutputReads {
  /** Memory of this stream's own that the next read goes into, while the child floods. */
  private own: Buffer | undefined;

  /** Where the next read goes. */
  readonly target = (): Uint8Array => (this.own === undefined ? SHARED : this.own.subarray(HEADROOM_BYTES));

  /** The chunk the last read (`bytes` long) produced; the read buffer may be reused afterwards. */
  take(bytes: number): Buffer {
    const own = this.own;
    if (own === undefined) {
      if (bytes >= FLOOD_BYTES) this.own = Buffer.allocUnsafeSlow(HEADROOM_BYTES + OWN_READ_BYTES);
      return copyWithHeadroom(SHARED.subarray(0, bytes));
    }
    if (bytes >= OWN_READ_BYTES / 2) {
      // At least half used: the memory becomes the chunk, and the next read gets new memory.
      this.own = Buffer.allocUnsafeSlow(HEADROOM_BYTES + OWN_READ_BYTES);
      unclaimed.add(own.buffer);
      return own.subarray(HEADROOM_BYTES, HEADROOM_BYTES + bytes);
    }
    // Less than half: copied out, so no chunk holds more than twice its size; the memory is kept
    // for the next read only while the flood goes on.
    if (bytes < FLOOD_BYTES) this.own = undefined;
    return copyWithHeadroom(own.subarray(HEADROOM_BYTES, HEADROOM_BYTES + bytes));
  }
}
