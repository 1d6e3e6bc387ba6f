import { describe, expect, it } from "vitest";
import { Queue } from "../../../src/services/process/queue.js";
import { ReplayBuffer } from "../../../src/services/process/replay.js";
import { dataEvent } from "../../../src/services/process/events.js";

describe("Queue", () => {
  it("hands items out in order across compactions", () => {
    const queue = new Queue<number>();
    const out: number[] = [];
    for (let i = 0; i < 1000; i++) {
      queue.push(i);
      if (i % 3 !== 0) out.push(queue.shift()!);
    }
    expect(queue.length).toBe(1000 - out.length);
    out.push(...queue.toArray());
    expect(out).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});

describe("ReplayBuffer", () => {
  it("keeps only the most recent frames within its budget", () => {
    const replay = new ReplayBuffer(10 * 1024);
    for (let i = 0; i < 5000; i++) replay.add(dataEvent("stdout", Buffer.alloc(1024, i % 256)), 1024);
    const kept = replay.snapshot();
    expect(kept).toHaveLength(10);
    expect(kept.map((entry) => (entry.event.event.value as { output: { value: Uint8Array } }).output.value[0])).toEqual(
      Array.from({ length: 10 }, (_, i) => (4990 + i) % 256),
    );
  });
});
