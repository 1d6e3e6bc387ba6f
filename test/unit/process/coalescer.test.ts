import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Coalescer, type Frame } from "../../../src/services/process/coalescer.js";
import { incompleteTail } from "../../../src/services/process/utf8.js";

const bytes = (...values: number[]): Buffer => Buffer.from(values);
const text = (frames: readonly Frame[]): string[] => frames.map((f) => `${f.stream}:${Buffer.from(f.data).toString("hex")}`);

describe("incompleteTail", () => {
  it("finds the start of a character whose remaining bytes are missing", () => {
    expect(incompleteTail(Buffer.from("abc"))).toBe(0);
    expect(incompleteTail(Buffer.from("€"))).toBe(0);
    expect(incompleteTail(bytes(0x61, 0xe2))).toBe(1);
    expect(incompleteTail(bytes(0x61, 0xe2, 0x82))).toBe(2);
    expect(incompleteTail(bytes(0xf0, 0x9f, 0x98))).toBe(3);
    expect(incompleteTail(bytes(0xc3))).toBe(1);
  });

  it("holds nothing back for bytes that cannot start a character", () => {
    expect(incompleteTail(bytes(0xff))).toBe(0);
    expect(incompleteTail(bytes(0xc0))).toBe(0); // overlong lead
    expect(incompleteTail(bytes(0x82, 0x82, 0x82))).toBe(0); // stray continuations
    expect(incompleteTail(bytes())).toBe(0);
  });
});

describe("Coalescer", () => {
  let frames: Frame[];
  let coalescer: Coalescer;
  beforeEach(() => {
    vi.useFakeTimers();
    frames = [];
    coalescer = new Coalescer((frame) => frames.push(frame), { windowMs: 5, maxBytes: 16, carryMaxMs: 500 });
  });
  afterEach(() => {
    coalescer.finish();
    vi.useRealTimers();
  });

  it("sends the first chunk after a quiet spell at once, then gathers the burst over the window", () => {
    coalescer.push("stdout", Buffer.from("a"));
    expect(text(frames)).toEqual(["stdout:61"]);
    coalescer.push("stdout", Buffer.from("b"));
    coalescer.push("stdout", Buffer.from("c"));
    expect(frames).toHaveLength(1);
    vi.advanceTimersByTime(5);
    expect(text(frames)).toEqual(["stdout:61", "stdout:6263"]);
    vi.advanceTimersByTime(5); // window closes with nothing pending
    coalescer.push("stdout", Buffer.from("d"));
    expect(frames).toHaveLength(3);
  });

  it("does not wait for the window once the size threshold is reached", () => {
    coalescer.push("stdout", Buffer.from("x"));
    coalescer.push("stdout", Buffer.alloc(10, 0x41));
    coalescer.push("stdout", Buffer.alloc(10, 0x42));
    expect(frames).toHaveLength(2);
    expect(Buffer.from(frames[1]!.data).toString()).toBe("A".repeat(10) + "B".repeat(10));
  });

  it("keeps streams apart and in arrival order", () => {
    coalescer.push("stdout", Buffer.from("1"));
    coalescer.push("stdout", Buffer.from("2"));
    coalescer.push("stderr", Buffer.from("3"));
    coalescer.push("stdout", Buffer.from("4"));
    coalescer.finish();
    expect(frames.map((f) => `${f.stream}:${Buffer.from(f.data).toString()}`)).toEqual(["stdout:1", "stdout:2", "stderr:3", "stdout:4"]);
  });

  it("never ends a frame inside a UTF-8 character", () => {
    coalescer.push("stdout", bytes(0x61, 0xe2));
    expect(text(frames)).toEqual(["stdout:61"]);
    coalescer.push("stdout", bytes(0x82));
    vi.advanceTimersByTime(5);
    expect(frames).toHaveLength(1);
    coalescer.push("stdout", bytes(0xac, 0x62));
    vi.advanceTimersByTime(5);
    expect(text(frames)).toEqual(["stdout:61", "stdout:e282ac62"]);
  });

  it("holds a partial character per stream while another stream speaks", () => {
    coalescer.push("stdout", bytes(0x61, 0xe2, 0x82));
    coalescer.push("stderr", bytes(0x65));
    coalescer.push("stdout", bytes(0xac));
    coalescer.finish();
    expect(text(frames)).toEqual(["stdout:61", "stderr:65", "stdout:e282ac"]);
  });

  it("releases bytes that never complete a character after a while (binary output)", () => {
    coalescer.push("stdout", bytes(0x00, 0xf0));
    expect(text(frames)).toEqual(["stdout:00"]);
    vi.advanceTimersByTime(499);
    expect(frames).toHaveLength(1);
    vi.advanceTimersByTime(10);
    expect(text(frames)).toEqual(["stdout:00", "stdout:f0"]);
  });

  it("keeps the age of held bytes that trickle in one at a time", () => {
    coalescer.push("stdout", bytes(0xf0));
    vi.advanceTimersByTime(300);
    coalescer.push("stdout", bytes(0x9f));
    vi.advanceTimersByTime(250);
    // 550 ms after the first byte: released, although the second came only 250 ms ago.
    expect(text(frames)).toEqual(["stdout:f09f"]);
  });

  it("sends everything, held bytes included, when finished, and ignores later chunks", () => {
    coalescer.push("pty", bytes(0x41));
    coalescer.push("pty", bytes(0x42, 0xe2));
    coalescer.finish();
    coalescer.push("pty", bytes(0x43));
    expect(text(frames)).toEqual(["pty:41", "pty:42", "pty:e2"]);
  });
});
