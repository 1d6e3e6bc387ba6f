/**
 * Output chunks with room in front of them. A large chunk read from a child is copied out of the
 * shared read buffer into memory with a few spare bytes before it, so whoever sends it on can
 * write its frame's header there and send header and data as one buffer without copying the data
 * again (services/process/output-frame.ts). The room is given out once: a chunk framed a second
 * time (a replay, another subscriber) is copied as before.
 */

/** Bytes kept in front of a chunk: enough for a Connect envelope and three nested tags. */
export const HEADROOM_BYTES = 32;

/** Below this, a chunk comes from Node's shared pool: a buffer of its own costs more than a copy. */
const MIN_BYTES = 16 * 1024;

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
 * copyWithHeadroom put it and its room is still free; the room is then taken. Undefined otherwise.
 */
export function claimHeadroom(chunk: Uint8Array, bytes: number): Uint8Array | undefined {
  if (bytes > HEADROOM_BYTES || chunk.byteOffset !== HEADROOM_BYTES || !unclaimed.delete(chunk.buffer)) return undefined;
  return new Uint8Array(chunk.buffer, HEADROOM_BYTES - bytes, bytes + chunk.length);
}
