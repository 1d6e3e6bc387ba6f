/**
 * An idle agent gives back the garbage a burst of load left (src/idle-memory.ts): a full
 * collection (and a trim of the allocator) runs once nothing is in flight, never while a request
 * is, and once per scheduled time of an idle spell; the file workers' threads end first.
 */
import { describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import { IdleMemory } from "../../src/idle-memory.js";
import { fileAccessFor, releaseIdleFileWorkers } from "../../src/user-fs/access.js";
import { lookupUser } from "../../src/users.js";
import { eventually } from "../helpers/agent.js";

const GARBAGE_BYTES = 64 * 1024 * 1024;

/** Leaves about GARBAGE_BYTES of unreachable objects on the heap. */
function makeGarbage(): void {
  let keep: unknown[] = [];
  for (let i = 0; i < GARBAGE_BYTES / 1024; i++) keep.push(new Array(128).fill(i));
  keep = [];
  void keep;
}

describe("IdleMemory", () => {
  it("collects the heap once idle, and not while a request is in flight", async () => {
    const idle = new IdleMemory({ collectAfterMs: [0], checkMs: 10 });
    try {
      idle.requestStarted();
      makeGarbage();
      // Several checks pass while the request is in flight: none collects.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(idle.collections).toBe(0);
      const grown = process.memoryUsage().heapUsed;
      idle.requestEnded();
      await eventually(() => idle.collections > 0);
      expect(process.memoryUsage().heapUsed).toBeLessThan(grown - GARBAGE_BYTES / 2);
      // Further checks of the same idle spell find nothing scheduled; new activity starts a spell.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(idle.collections).toBe(1);
      idle.requestStarted();
      idle.requestEnded();
      await eventually(() => idle.collections === 2);
    } finally {
      idle.stop();
    }
  });

  it("gives back the memory of collected Buffers, which V8 frees only after its collection", async () => {
    const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;
    // 64 KiB each: under glibc's mmap threshold, so they come from its arenas (as socket reads do),
    // filled so that their pages are really there, with small live ones in between (as the heap
    // of a busy agent has), so that freed chunks do not merge into memory free() gives back.
    const live: Buffer[] = [];
    let buffers: Buffer[] = Array.from({ length: 2048 }, () => {
      live.push(Buffer.alloc(8 * 1024, 1));
      return Buffer.alloc(64 * 1024, 1);
    });
    const loaded = rssMiB();
    buffers = [];
    void buffers;
    const idle = new IdleMemory({ collectAfterMs: [0], checkMs: 10 });
    try {
      await eventually(() => idle.collections > 0);
      await eventually(() => rssMiB() < loaded - 96, 10_000, 50);
      expect(live).toHaveLength(2048);
    } finally {
      idle.stop();
    }
  });

  it("lets the file workers go once idle, and a later request as another user starts one again", async () => {
    const nobody = lookupUser("nobody")!;
    const threads = (): number => readdirSync("/proc/self/task").length;
    const before = threads();
    expect((await fileAccessFor(nobody).stat("/")).isDirectory()).toBe(true);
    const withWorker = threads();
    expect(withWorker).toBeGreaterThan(before);
    let released = 0;
    const idle = new IdleMemory({
      collectAfterMs: [0],
      checkMs: 10,
      release: [
        async () => {
          await releaseIdleFileWorkers();
          released++;
        },
      ],
    });
    try {
      await eventually(() => idle.collections > 0);
      expect(released).toBe(1);
      expect(threads()).toBeLessThan(withWorker);
      expect((await fileAccessFor(nobody).stat("/")).isDirectory()).toBe(true);
    } finally {
      idle.stop();
    }
  });
});
