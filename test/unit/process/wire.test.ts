import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConnectResponseSchema, StartResponseSchema } from "../../../src/gen/sandboxagent/api_pb.js";
import type { Stream } from "../../../src/services/process/coalescer.js";
import { dataEvent, startEvent } from "../../../src/services/process/events.js";
import { joinWithHeadroom, withEvent } from "../../../src/services/process/wire.js";

/** Sizes on both sides of every varint length boundary the header can meet. */
const SIZES = [1, 2, 124, 125, 127, 128, 16_380, 16_383, 16_384, 70_000, 2_097_148, 2_097_152];
const STREAMS: readonly Stream[] = ["stdout", "stderr", "pty"];

/** Buffer.equals: a deep equality of megabytes, element by element, would take minutes. */
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

function payload(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

describe("data events encoded once", () => {
  for (const stream of STREAMS) {
    it(`encode ${stream} exactly as the nested message does, with and without headroom`, () => {
      for (const size of SIZES) {
        const bytes = payload(size);
        const half = Math.floor(size / 2);
        const joined = joinWithHeadroom([bytes.subarray(0, half), bytes.subarray(half)], size);
        for (const data of [bytes, joined]) {
          const event = dataEvent(stream, data);
          const expected = toBinary(StartResponseSchema, create(StartResponseSchema, { event }));
          expect(same(toBinary(StartResponseSchema, withEvent(create(StartResponseSchema), event, true)), expected), `${size} bytes`).toBe(true);
          // Every binary client of the frame gets the same bytes (the second one from the cache).
          expect(same(toBinary(ConnectResponseSchema, withEvent(create(ConnectResponseSchema), event, true)), expected), `${size} bytes`).toBe(true);
        }
      }
    });
  }

  it("keeps the output intact when a frame is a shortened view of a joined buffer", () => {
    const bytes = payload(300);
    const joined = joinWithHeadroom([bytes.subarray(0, 100), bytes.subarray(100)], 300);
    // As the coalescer holds back the start of a cut character.
    const event = dataEvent("stdout", joined.subarray(0, 299));
    const encoded = toBinary(StartResponseSchema, withEvent(create(StartResponseSchema), event, true));
    expect(same(encoded, toBinary(StartResponseSchema, create(StartResponseSchema, { event })))).toBe(true);
    expect(same(joined.subarray(0, 299), bytes.subarray(0, 299))).toBe(true);
  });

  it("sends other events, and every event to JSON clients, as messages", () => {
    const start = startEvent(42);
    expect(withEvent(create(StartResponseSchema), start, true).event).toBe(start);
    const data = dataEvent("stdout", payload(10));
    const forJson = withEvent(create(StartResponseSchema), data, false);
    expect(forJson.event).toBe(data);
    expect(forJson.$unknown).toBeUndefined();
  });
});
