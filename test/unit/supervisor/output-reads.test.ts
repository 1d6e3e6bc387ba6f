/**
 * How a child's output is read (supervisor/headroom.ts), driven as net.Socket drives `onread`:
 * `target()` for where a read goes, the read fills it, `take(n)` for the chunk. Chunks must stay
 * intact whatever later reads do to the buffers, and never hold much more memory than they need.
 */
import { describe, expect, it } from "vitest";
import { claimHeadroom, HEADROOM_BYTES, OutputReads } from "../../../src/supervisor/headroom.js";

/** One read of `bytes` bytes of `fill`, as libuv would do it. */
function read(reads: OutputReads, bytes: number, fill: number): { chunk: Buffer; target: Uint8Array } {
  const target = reads.target();
  expect(target.length).toBeGreaterThanOrEqual(bytes);
  target.fill(fill, 0, bytes);
  return { chunk: reads.take(bytes), target };
}

describe("OutputReads", () => {
  it("copies small reads out of the shared buffer, which the next read overwrites", () => {
    const reads = new OutputReads();
    const first = read(reads, 100, 1);
    const second = read(reads, 200, 2);
    expect(second.target.buffer).toBe(first.target.buffer); // the shared buffer
    expect(first.chunk.equals(Buffer.alloc(100, 1))).toBe(true);
    expect(second.chunk.equals(Buffer.alloc(200, 2))).toBe(true);
  });

  it("reads a flood into memory of its own that becomes the chunk, then goes back to the shared buffer", () => {
    const reads = new OutputReads();
    const shared = read(reads, 100_000, 1).target.buffer; // a flood starts: copied, then own memory
    const own1 = read(reads, 200_000, 2);
    expect(own1.target.buffer).not.toBe(shared);
    expect(own1.chunk.buffer).toBe(own1.target.buffer); // no copy
    expect(own1.chunk.byteOffset).toBe(HEADROOM_BYTES);
    const own2 = read(reads, 262_144, 3);
    expect(own2.target.buffer).not.toBe(own1.target.buffer); // fresh memory for each read
    // Less than half the memory used: copied out, the memory is kept while the flood goes on.
    const partial = read(reads, 70_000, 4);
    expect(partial.chunk.buffer).not.toBe(partial.target.buffer);
    expect(read(reads, 80_000, 5).target.buffer).toBe(partial.target.buffer);
    // The flood is over: back to the shared buffer.
    read(reads, 10, 6);
    expect(read(reads, 10, 7).target.buffer).toBe(shared);
    expect(own1.chunk.equals(Buffer.alloc(200_000, 2))).toBe(true);
    expect(own2.chunk.equals(Buffer.alloc(262_144, 3))).toBe(true);
    expect(partial.chunk.equals(Buffer.alloc(70_000, 4))).toBe(true);
  });

  it("never lets a chunk hold more than twice the memory it needs", () => {
    const reads = new OutputReads();
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 500; i++) {
      const capacity = reads.target().length;
      const bytes = 1 + Math.floor(random() * capacity);
      const { chunk } = read(reads, bytes, i % 256);
      expect(chunk.length).toBe(bytes);
      if (chunk.length >= 16 * 1024) expect(chunk.buffer.byteLength).toBeLessThanOrEqual(2 * chunk.length + HEADROOM_BYTES);
    }
  });

  it("leaves room in front of every large chunk, for one frame header", () => {
    const reads = new OutputReads();
    for (const bytes of [20_000, 100_000, 250_000, 130_000]) {
      const { chunk } = read(reads, bytes, 9);
      const framed = claimHeadroom(chunk, 11);
      expect(framed?.length, `${bytes} bytes`).toBe(bytes + 11);
      expect(claimHeadroom(chunk, 11), "given out once").toBeUndefined();
    }
  });
});
