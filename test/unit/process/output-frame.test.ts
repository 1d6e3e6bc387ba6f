/**
 * Output frames the Start and Connect handlers encode themselves (connect-fixes/preencoded.ts):
 * byte for byte what protobuf-es and connect-es would have sent, and swapped in only where a
 * binary codec carries them.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { ConnectResponseSchema, Process, StartResponseSchema } from "../../../src/gen/sandboxagent/api_pb.js";
import { frameSlot, placeholderOf, preencodedFrames } from "../../../src/services/connect-fixes/preencoded.js";
import { dataEvent } from "../../../src/services/process/events.js";
import { outputFrame } from "../../../src/services/process/output-frame.js";
import { copyWithHeadroom } from "../../../src/supervisor/headroom.js";

function envelope(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

describe("outputFrame", () => {
  // Lengths on each side of the varint boundaries of the three nested length prefixes.
  const sizes = [1, 120, 123, 124, 127, 128, 16_370, 16_380, 16_384, 65_536, 2_097_140, 2_097_152];
  for (const stream of ["stdout", "stderr", "pty"] as const) {
    it(`encodes ${stream} exactly as protobuf-es and the envelope would`, () => {
      for (const size of sizes) {
        const data = Buffer.alloc(size, size % 251);
        const expected = envelope(toBinary(StartResponseSchema, create(StartResponseSchema, { event: dataEvent(stream, data) })));
        expect(Buffer.from(outputFrame(stream, data)).equals(expected), `${stream}, ${size} bytes`).toBe(true);
        // ConnectResponse has the same shape.
        expect(envelope(toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { event: dataEvent(stream, data) }))).equals(expected)).toBe(true);
      }
    });
  }
});

describe("outputFrame with room in front of the output (supervisor/headroom.ts)", () => {
  const expectedFor = (data: Uint8Array): Buffer => envelope(toBinary(StartResponseSchema, create(StartResponseSchema, { event: dataEvent("stdout", data) })));

  it("writes the header in front of the output, in the same memory, exactly as protobuf-es would", () => {
    for (const size of [16_384, 16_400, 65_536, 212_992, 2_097_152]) {
      const source = Buffer.alloc(size, size % 251);
      const chunk = copyWithHeadroom(source);
      source.fill(7); // the read buffer is reused at once: the chunk is a copy
      const frame = outputFrame("stdout", chunk);
      expect(frame.buffer, `${size} bytes: framed in place`).toBe(chunk.buffer);
      expect(Buffer.from(frame).equals(expectedFor(Buffer.alloc(size, size % 251))), `${size} bytes`).toBe(true);
    }
  });

  it("gives the room out once: the next frame of the same chunk is a copy, and both stay intact", () => {
    const chunk = copyWithHeadroom(Buffer.alloc(70_000, 3));
    const first = outputFrame("stdout", chunk);
    const second = outputFrame("stderr", chunk);
    expect(second.buffer).not.toBe(chunk.buffer);
    expect(Buffer.from(first).equals(expectedFor(chunk))).toBe(true);
    expect(Buffer.from(second).equals(envelope(toBinary(StartResponseSchema, create(StartResponseSchema, { event: dataEvent("stderr", chunk) }))))).toBe(true);
  });

  it("never writes in front of a part of a chunk, nor of a small one", () => {
    const chunk = copyWithHeadroom(Buffer.alloc(70_000, 5));
    const part = chunk.subarray(100);
    const before = Buffer.from(chunk.subarray(0, 100));
    const frame = outputFrame("stdout", part);
    expect(frame.buffer).not.toBe(chunk.buffer);
    expect(Buffer.from(chunk.subarray(0, 100)).equals(before)).toBe(true);
    expect(Buffer.from(frame).equals(expectedFor(part))).toBe(true);
    // A chunk cut at its end (a held-back partial character) still starts at its room.
    expect(outputFrame("stdout", chunk.subarray(0, 69_999)).buffer).toBe(chunk.buffer);
    const small = copyWithHeadroom(Buffer.alloc(100, 1));
    expect(Buffer.from(outputFrame("stdout", small)).equals(expectedFor(small))).toBe(true);
  });
});

describe("preencodedFrames", () => {
  const placeholder = envelope(toBinary(StartResponseSchema, placeholderOf(StartResponseSchema)));
  const other = envelope(Uint8Array.of(1, 2, 3));
  const start = { method: Process.method.start } as unknown as UniversalHandler;
  const list = { method: Process.method.list } as unknown as UniversalHandler;

  /** A handler that puts `frames` in the call's slot (if it has one) and answers with `body`. */
  function handlerPutting(frames: Uint8Array[], body: Uint8Array[], seen: { slot?: boolean }) {
    return async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
      const ctx = createHandlerContext({
        service: Process,
        method: Process.method.start,
        protocolName: "connect",
        requestMethod: "POST",
        url: "http://localhost/",
        contextValues: req.contextValues,
      });
      const slot = frameSlot(ctx);
      seen.slot = slot !== undefined;
      for (const frame of frames) slot?.put(frame);
      return {
        status: 200,
        body: (async function* () {
          yield* body;
        })(),
      };
    };
  }

  function request(contentType: string): UniversalServerRequest {
    return {
      httpVersion: "1.1",
      method: "POST",
      url: "http://localhost/sandboxagent.Process/Start",
      header: new Headers({ "content-type": contentType }),
      contextValues: createContextValues(),
      body: undefined,
      signal: new AbortController().signal,
    } as unknown as UniversalServerRequest;
  }

  async function bodyOf(res: UniversalServerResponse): Promise<Buffer[]> {
    const chunks: Buffer[] = [];
    for await (const chunk of (res.body as AsyncIterable<Uint8Array>) ?? []) chunks.push(Buffer.from(chunk));
    return chunks;
  }

  const wrap = preencodedFrames([Process.method.start]);

  for (const type of ["application/connect+proto", "application/grpc", "application/grpc+proto", "application/grpc-web+proto", "application/grpc-web"]) {
    it(`swaps each placeholder for its frame, in order, for ${type}`, async () => {
      const seen: { slot?: boolean } = {};
      const frames = [Buffer.from("first"), Buffer.from("second")];
      const res = await wrap(handlerPutting(frames, [other, placeholder, other, placeholder], seen), start)(request(type));
      expect(seen.slot).toBe(true);
      expect(await bodyOf(res)).toEqual([other, frames[0], other, frames[1]]);
    });
  }

  it("gives no slot to a JSON call, nor to a method not listed", async () => {
    for (const [handler, type] of [
      [start, "application/connect+json"],
      [list, "application/connect+proto"],
    ] as const) {
      const seen: { slot?: boolean } = {};
      const res = await wrap(handlerPutting([], [placeholder], seen), handler)(request(type));
      expect(seen.slot).toBe(false);
      expect(await bodyOf(res)).toEqual([placeholder]);
    }
  });

  it("fails the body rather than send a placeholder with no frame", async () => {
    const res = await wrap(handlerPutting([], [placeholder], {}), start)(request("application/connect+proto"));
    await expect(bodyOf(res)).rejects.toThrow("no encoded frame");
  });
});
