/**
 * The byte-level pieces of the built-in drivers: the end-of-cell marker scanner (bash) and the
 * frame codec (jshell), fed every possible split of their input.
 */
import { describe, expect, it } from "vitest";
import { decodeStrings, encodeFrame, encodeStrings, FrameError, FrameReader } from "../../../src/kernels/drivers/frames.js";
import { SentinelScanner } from "../../../src/kernels/drivers/sentinel.js";

const MARKER = "\x1eSAfeedfacecafebeef0123456789:";

function scan(chunks: Buffer[]): { text: string; pieces: string[]; status: string | undefined } {
  const scanner = new SentinelScanner();
  const pieces: string[] = [];
  let status: string | undefined;
  scanner.arm(
    MARKER,
    (t) => pieces.push(t),
    (s) => {
      status = s;
    },
  );
  for (const chunk of chunks) scanner.push(chunk);
  return { text: pieces.join(""), pieces, status };
}

function splitsOf(bytes: Buffer): Buffer[][] {
  const all: Buffer[][] = [[bytes]];
  for (let i = 1; i < bytes.length; i++) all.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return all;
}

describe("SentinelScanner", () => {
  const output = "héllo € 😀\nno newline at the end";
  const stream = Buffer.concat([Buffer.from(output), Buffer.from(`${MARKER}17\n`), Buffer.from("late output of a background job")]);

  it("finds the marker and the status wherever the stream is cut, and never mangles a character", () => {
    for (const chunks of splitsOf(stream)) {
      const result = scan(chunks);
      expect(result.text).toBe(output);
      expect(result.status).toBe("17");
      expect(result.text).not.toContain("\ufffd");
    }
  });

  it("copes with a stream delivered one byte at a time", () => {
    const bytes = [...stream].map((b) => Buffer.from([b]));
    const result = scan(bytes);
    expect(result.text).toBe(output);
    expect(result.status).toBe("17");
  });

  it("passes through text that only resembles the marker", () => {
    const lookalike = `${MARKER.slice(0, -3)}X:0\n\x1e\x1eSA`;
    const result = scan([Buffer.from(lookalike), Buffer.from(`${MARKER}0\n`)]);
    expect(result.text).toBe(lookalike);
    expect(result.status).toBe("0");
  });

  it("streams: text before a possible marker start is delivered at once", () => {
    const scanner = new SentinelScanner();
    const pieces: string[] = [];
    scanner.arm(
      MARKER,
      (t) => pieces.push(t),
      () => undefined,
    );
    scanner.push(Buffer.from("first line\n\x1eSA"));
    expect(pieces.join("")).toBe("first line\n");
    scanner.push(Buffer.from("not-the-marker"));
    expect(pieces.join("")).toBe("first line\n\x1eSAnot-the-marker");
  });

  it("drops output while nothing is armed, and delivers what is left when the stream ends early", () => {
    const scanner = new SentinelScanner();
    scanner.push(Buffer.from("between executions"));
    const pieces: string[] = [];
    let ended = false;
    scanner.arm(
      MARKER,
      (t) => pieces.push(t),
      () => {
        ended = true;
      },
    );
    scanner.push(Buffer.from("partial \xe2\x82".split("").map((c) => c.charCodeAt(0))));
    scanner.push(Buffer.from(MARKER.slice(0, 5)));
    scanner.flush();
    expect(ended).toBe(false);
    expect(scanner.isArmed).toBe(false);
    // The incomplete character cannot be completed any more: it becomes U+FFFD, the rest is kept.
    expect(pieces.join("")).toBe(`partial \ufffd${MARKER.slice(0, 5)}`);
  });

  it("holds only a bounded number of bytes whatever the output", () => {
    const scanner = new SentinelScanner();
    let total = 0;
    scanner.arm(
      MARKER,
      (t) => {
        total += t.length;
      },
      () => undefined,
    );
    const chunk = Buffer.alloc(1 << 16, 0x61);
    for (let i = 0; i < 160; i++) scanner.push(chunk);
    expect(total).toBe(160 * (1 << 16));
  });
});

describe("frames", () => {
  it("round-trips string lists, empty strings and non-ASCII included", () => {
    const strings = ["", "token", "line\nbreak", "é€😀", "\0inside"];
    expect(decodeStrings(encodeStrings(strings))).toEqual(strings);
    expect(decodeStrings(encodeStrings([]))).toEqual([]);
  });

  it("cuts a stream into frames wherever it is split", () => {
    const stream = Buffer.concat([encodeFrame("O", Buffer.from("out é")), encodeFrame("K", Buffer.alloc(0)), encodeFrame("D", encodeStrings(["1", "ok"]))]);
    for (const chunks of splitsOf(stream)) {
      const reader = new FrameReader();
      const frames = chunks.flatMap((chunk) => reader.push(chunk));
      expect(frames.map((f) => f.type)).toEqual(["O", "K", "D"]);
      expect(frames[0]?.payload.toString("utf8")).toBe("out é");
      expect(frames[1]?.payload.length).toBe(0);
      expect(decodeStrings(frames[2]!.payload)).toEqual(["1", "ok"]);
    }
  });

  it("refuses a corrupt stream instead of waiting for gigabytes", () => {
    const reader = new FrameReader();
    expect(() => reader.push(Buffer.from([0x4f, 0xff, 0xff, 0xff, 0xff]))).toThrow(FrameError);
    expect(() => decodeStrings(Buffer.from([0, 0, 0, 2, 0, 0, 0, 9, 0x61]))).toThrow(FrameError);
  });
});
