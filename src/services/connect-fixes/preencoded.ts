/**
 * Response messages a handler encodes itself. Every 64 KiB of process output cost four zero-filled
 * allocations and copies: protobuf-es copies a bytes field once per level of nesting (DataEvent,
 * ProcessEvent, StartResponse) when it finishes each level, and connect-es copies the message into
 * its envelope. That was a third of the agent's CPU while streaming output (issue 16's profile).
 * connect-es cannot be handed an encoded message, so a handler that can encode one puts the whole
 * frame (envelope included) in its call's FrameSlot and yields a placeholder message; the wrapper
 * below swaps the placeholder's frame for it as the body goes out.
 *
 * Only for binary codecs, whose envelope all three protocols share ([flags][length][message]).
 * Frames are never compressed: the agent does not compress responses (server.ts).
 *
 * Upstream: no connect-es or protobuf-es report existed: docs/upstream/connect-es.md ("encoded
 * messages").
 */
import { create, type DescMessage, type DescMethod, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { mapBody, type HandlerWrap } from "./handler-wrap.js";

/** The largest field number, which no message of the agent uses: a placeholder carries it as an unknown field. */
const PLACEHOLDER_FIELD = 536_870_911;

/** The placeholder as its envelope: flags 0, length 6, tag of PLACEHOLDER_FIELD as a varint, value 0. */
const PLACEHOLDER_FRAME = Uint8Array.of(0, 0, 0, 0, 6, 0xf8, 0xff, 0xff, 0xff, 0x0f, 0);

/** The message a handler yields in place of a frame it put in its slot. */
export function placeholderOf<Desc extends DescMessage>(schema: Desc): MessageShape<Desc> {
  const message = create(schema);
  message.$unknown = [{ no: PLACEHOLDER_FIELD, wireType: WireType.Varint, data: Uint8Array.of(0) }];
  const encoded = toBinary(schema, message);
  // Checked once per schema: a placeholder the wrapper did not recognise would reach the client.
  if (Buffer.compare(encoded, PLACEHOLDER_FRAME.subarray(5)) !== 0) throw new Error(`placeholder of ${schema.typeName} encodes unexpectedly`);
  return message;
}

/** The frames a handler encoded, in the order of the placeholders it yielded. */
export class FrameSlot {
  private readonly frames: Uint8Array[] = [];

  put(frame: Uint8Array): void {
    this.frames.push(frame);
  }

  take(): Uint8Array {
    const frame = this.frames.shift();
    // Each placeholder follows its put(): a missing frame is a bug, and output must not go astray.
    if (frame === undefined) throw new Error("a placeholder frame has no encoded frame");
    return frame;
  }
}

const slotKey = createContextKey<FrameSlot | undefined>(undefined, { description: "frames the handler encoded itself" });

/** This call's slot, or undefined when its responses must be messages (a JSON codec, or a method not listed). */
export function frameSlot(ctx: HandlerContext): FrameSlot | undefined {
  return ctx.values.get(slotKey);
}

const BINARY_STREAM = /^application\/(connect\+proto|grpc|grpc\+proto|grpc-web|grpc-web\+proto)\s*(;|$)/i;

function isPlaceholder(chunk: Uint8Array): boolean {
  if (chunk.length !== PLACEHOLDER_FRAME.length) return false;
  for (let i = 0; i < chunk.length; i++) if (chunk[i] !== PLACEHOLDER_FRAME[i]) return false;
  return true;
}

/** Gives binary calls of `methods` a slot, and swaps placeholders for its frames. */
export function preencodedFrames(methods: readonly DescMethod[]): HandlerWrap {
  const listed = new Set(methods);
  return (next, handler) => {
    if (!listed.has(handler.method)) return next;
    return async (req) => {
      if (req.contextValues === undefined || !BINARY_STREAM.test(req.header.get("content-type") ?? "")) return next(req);
      const slot = new FrameSlot();
      req.contextValues.set(slotKey, slot);
      const res = await next(req);
      if (res.body === undefined) return res;
      return { ...res, body: mapBody(res.body, (chunk) => (isPlaceholder(chunk) ? slot.take() : chunk)) };
    };
  };
}
