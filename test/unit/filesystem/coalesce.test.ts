/**
 * The pieces between the tree watcher and a consumer, alone and on a fake clock: the coalescer's folding
 * and ordering rules, and the event buffer's keep-the-first-N overflow accounting.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { EventType } from "../../../src/gen/sandboxagent/api_pb.js";
import { COALESCE_WINDOW_MS, Coalescer, type WatchEvent } from "../../../src/services/filesystem/coalesce.js";
import { EventBuffer } from "../../../src/services/filesystem/event-buffer.js";

const { CREATE, WRITE, REMOVE, CHMOD } = EventType;
const ev = (name: string, type: EventType): WatchEvent => ({ name, type });

describe("Coalescer", () => {
  let batches: WatchEvent[][];
  let coalescer: Coalescer;
  beforeEach(() => {
    vi.useFakeTimers();
    batches = [];
    coalescer = new Coalescer((batch) => batches.push([...batch]));
  });
  afterEach(() => {
    coalescer.dispose();
    vi.useRealTimers();
  });

  it("delivers nothing before the window closes, then everything in one batch", () => {
    coalescer.push(ev("a", CREATE));
    vi.advanceTimersByTime(COALESCE_WINDOW_MS - 1);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual([[ev("a", CREATE)]]);
  });

  it("folds a burst of writes to one file into one write, and keeps a create before them", () => {
    coalescer.push(ev("a", CREATE));
    for (let i = 0; i < 100; i++) coalescer.push(ev("a", WRITE));
    vi.advanceTimersByTime(COALESCE_WINDOW_MS);
    expect(batches).toEqual([[ev("a", CREATE), ev("a", WRITE)]]);
  });

  it("never reorders events of different files, and folds writes interleaved with other files", () => {
    coalescer.push(ev("a", WRITE));
    coalescer.push(ev("b", CREATE));
    coalescer.push(ev("a", WRITE));
    coalescer.push(ev("b", WRITE));
    coalescer.push(ev("a", WRITE));
    vi.advanceTimersByTime(COALESCE_WINDOW_MS);
    expect(batches).toEqual([[ev("a", WRITE), ev("b", CREATE), ev("b", WRITE)]]);
  });

  it("does not fold across another event of the same file", () => {
    coalescer.push(ev("a", WRITE));
    coalescer.push(ev("a", CHMOD));
    coalescer.push(ev("a", WRITE));
    coalescer.push(ev("a", REMOVE));
    coalescer.push(ev("a", CREATE));
    coalescer.push(ev("a", WRITE));
    coalescer.push(ev("a", WRITE));
    vi.advanceTimersByTime(COALESCE_WINDOW_MS);
    expect(batches).toEqual([[ev("a", WRITE), ev("a", CHMOD), ev("a", WRITE), ev("a", REMOVE), ev("a", CREATE), ev("a", WRITE)]]);
  });

  it("uses a fixed window, so a file written without pause still reports once per window", () => {
    for (let t = 0; t < COALESCE_WINDOW_MS * 4; t += 5) {
      coalescer.push(ev("busy", WRITE));
      vi.advanceTimersByTime(5);
    }
    vi.advanceTimersByTime(COALESCE_WINDOW_MS);
    expect(batches.length).toBeGreaterThanOrEqual(4);
    expect(batches.length).toBeLessThanOrEqual(5);
    expect(batches.every((batch) => batch.length === 1 && batch[0]?.type === WRITE)).toBe(true);
  });

  it("flush delivers at once; dispose drops what is pending and everything after", () => {
    coalescer.push(ev("a", CREATE));
    coalescer.flush();
    expect(batches).toEqual([[ev("a", CREATE)]]);
    coalescer.push(ev("b", CREATE));
    coalescer.dispose();
    coalescer.push(ev("c", CREATE));
    vi.advanceTimersByTime(COALESCE_WINDOW_MS * 2);
    expect(batches).toEqual([[ev("a", CREATE)]]);
  });

  it("delivers a very large burst in bounded batches without waiting for the window", () => {
    for (let i = 0; i < 5000; i++) coalescer.push(ev(`f${i}`, CREATE));
    expect(batches.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(1024);
    vi.advanceTimersByTime(COALESCE_WINDOW_MS);
    expect(batches.flat().map((e) => e.name)).toEqual(Array.from({ length: 5000 }, (_, i) => `f${i}`));
  });
});

describe("EventBuffer", () => {
  it("keeps the first N, counts the rest, and stays closed until the loss is taken", () => {
    const buffer = new EventBuffer<number>(3);
    for (let i = 1; i <= 5; i++) buffer.push(i);
    expect(buffer.takeAll()).toEqual([1, 2, 3]);
    // Still closed: nothing after the gap may slip in ahead of its report.
    buffer.push(6);
    expect(buffer.takeAll()).toEqual([]);
    expect(buffer.takeLost()).toBe(3);
    expect(buffer.takeLost()).toBe(0);
    buffer.push(7);
    expect(buffer.takeAll()).toEqual([7]);
  });

  it("shifts in order across compactions, and wakes a waiting consumer on push", async () => {
    const buffer = new EventBuffer<number>(10_000);
    for (let i = 0; i < 5000; i++) buffer.push(i);
    const shifted: number[] = [];
    for (let item = buffer.shift(); item !== undefined; item = buffer.shift()) shifted.push(item);
    expect(shifted).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(buffer.size).toBe(0);
    const woken = buffer.changed();
    buffer.push(42);
    await woken;
    expect(buffer.shift()).toBe(42);
  });
});
