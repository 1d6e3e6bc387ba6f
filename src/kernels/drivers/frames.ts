/**
 * The jshell driver's wire format, both ways: a type byte, a 4-byte big-endian payload length,
 * then the payload. Lists of strings are a 4-byte count, then a 4-byte length and UTF-8 bytes per
 * string. Binary framing keeps user output (any bytes at all) apart from the driver's own messages.
 */

/** Far above any frame the launcher writes (its output frames are 32 KiB): anything larger is corruption. */
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export interface Frame {
  readonly type: string;
  readonly payload: Buffer;
}

export function encodeFrame(type: string, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(type.charCodeAt(0), 0);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

export function encodeStrings(strings: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(strings.length, 0);
  parts.push(count);
  for (const text of strings) {
    const bytes = Buffer.from(text, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length, 0);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

export class FrameError extends Error {}

export function decodeStrings(payload: Buffer): string[] {
  if (payload.length < 4) throw new FrameError("truncated string list");
  const count = payload.readUInt32BE(0);
  const strings: string[] = [];
  let offset = 4;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > payload.length) throw new FrameError("truncated string list");
    const length = payload.readUInt32BE(offset);
    offset += 4;
    if (offset + length > payload.length) throw new FrameError("truncated string list");
    strings.push(payload.toString("utf8", offset, offset + length));
    offset += length;
  }
  return strings;
}

/** Cuts a byte stream into frames; holds at most one incomplete frame. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** The complete frames the stream now holds. Throws FrameError on a corrupt stream. */
  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    while (this.buffered >= 5) {
      const head = this.peek(5);
      const length = head.readUInt32BE(1);
      if (length > MAX_FRAME_BYTES) throw new FrameError(`frame of ${length} bytes`);
      if (this.buffered < 5 + length) break;
      const frame = this.take(5 + length);
      frames.push({ type: String.fromCharCode(frame[0]!), payload: frame.subarray(5) });
    }
    return frames;
  }

  private peek(bytes: number): Buffer {
    if (this.chunks[0]!.length < bytes) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, bytes);
  }

  private take(bytes: number): Buffer {
    if (this.chunks[0]!.length < bytes) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const taken = first.subarray(0, bytes);
    if (first.length === bytes) this.chunks.shift();
    else this.chunks[0] = first.subarray(bytes);
    this.buffered -= bytes;
    return taken;
  }
}
