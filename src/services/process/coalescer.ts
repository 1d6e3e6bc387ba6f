/**
 * Turns the chunks a child writes into frames: chunks that arrive close together go out as one
 * frame, nothing is ever reordered within a stream, and no frame ends in half a UTF-8 character.
 *
 * Timing: the first chunk after a quiet spell goes out at once and opens a window; chunks arriving
 * while the window is open wait for it to close (or for the size threshold), then go out together.
 * A flood of tiny writes costs one frame per window, an interactive echo costs no delay.
 */
import { incompleteTail } from "./utf8.js";

export type Stream = "stdout" | "stderr" | "pty";

export interface Frame {
  readonly stream: Stream;
  readonly data: Uint8Array;
}

export interface CoalescerOptions {
  readonly windowMs: number;
  readonly maxBytes: number;
  readonly carryMaxMs: number;
}

interface Segment {
  readonly stream: Stream;
  chunks: Uint8Array[];
  bytes: number;
  /** Bytes at the start of this segment that were held back from an earlier one, and since when. */
  readonly carried: { readonly bytes: number; readonly since: number } | undefined;
}

interface Carry {
  readonly bytes: Uint8Array;
  readonly since: number;
}

function join(chunks: readonly Uint8Array[], total: number): Uint8Array {
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

export class Coalescer {
  private segments: Segment[] = [];
  private pendingBytes = 0;
  /** Per stream, the start of a character whose remaining bytes have not arrived yet. */
  private readonly carries = new Map<Stream, Carry>();
  private windowTimer: NodeJS.Timeout | undefined;
  private carryTimer: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(
    private readonly emit: (frame: Frame) => void,
    private readonly options: CoalescerOptions,
  ) {}

  push(stream: Stream, chunk: Uint8Array): void {
    if (this.finished || chunk.length === 0) return;
    const held = this.carries.get(stream);
    let carried: Segment["carried"];
    if (held !== undefined) {
      this.carries.delete(stream);
      chunk = Buffer.concat([held.bytes, chunk]);
      carried = { bytes: held.bytes.length, since: held.since };
    }
    const last = this.segments.at(-1);
    if (last !== undefined && last.stream === stream) {
      last.chunks.push(chunk);
      last.bytes += chunk.length;
    } else {
      if (last !== undefined) this.holdIncompleteTail(last);
      this.segments.push({ stream, chunks: [chunk], bytes: chunk.length, carried });
    }
    this.pendingBytes += chunk.length;
    if (this.windowTimer === undefined) {
      this.flush();
      this.openWindow();
    } else if (this.pendingBytes >= this.options.maxBytes) {
      this.flush();
    }
  }

  /** Sends everything still held, held-back character starts included. Later pushes are ignored. */
  finish(): void {
    if (this.finished) return;
    this.flush();
    for (const [stream, carry] of this.carries) this.emit({ stream, data: carry.bytes });
    this.carries.clear();
    this.finished = true;
    clearTimeout(this.windowTimer);
    clearTimeout(this.carryTimer);
    this.windowTimer = undefined;
    this.carryTimer = undefined;
  }

  private openWindow(): void {
    this.windowTimer = setTimeout(() => {
      this.windowTimer = undefined;
      if (this.segments.length === 0) return; // the burst is over: the next chunk goes out at once
      this.flush();
      this.openWindow();
    }, this.options.windowMs);
  }

  private flush(): void {
    const last = this.segments.at(-1);
    if (last !== undefined) this.holdIncompleteTail(last);
    const segments = this.segments;
    this.segments = [];
    this.pendingBytes = 0;
    for (const segment of segments) {
      if (segment.bytes > 0) this.emit({ stream: segment.stream, data: join(segment.chunks, segment.bytes) });
    }
    this.armCarryTimer();
  }

  /** Moves a trailing partial character of a closing segment into the carry of its stream. */
  private holdIncompleteTail(segment: Segment): void {
    const data = join(segment.chunks, segment.bytes);
    const tail = incompleteTail(data);
    segment.chunks = [tail === 0 ? data : data.subarray(0, data.length - tail)];
    segment.bytes = data.length - tail;
    if (tail === 0) return;
    const tailStart = data.length - tail;
    // A tail that still contains held bytes keeps their age, so a character that never completes
    // is released on time however slowly its bytes trickle in.
    const since = segment.carried !== undefined && tailStart < segment.carried.bytes ? segment.carried.since : Date.now();
    this.carries.set(segment.stream, { bytes: Buffer.from(data.subarray(tailStart)), since });
  }

  private armCarryTimer(): void {
    if (this.carryTimer !== undefined || this.carries.size === 0) return;
    const oldest = Math.min(...[...this.carries.values()].map((carry) => carry.since));
    const delay = Math.max(0, oldest + this.options.carryMaxMs - Date.now());
    this.carryTimer = setTimeout(() => {
      this.carryTimer = undefined;
      this.releaseExpiredCarries();
    }, delay);
  }

  private releaseExpiredCarries(): void {
    // Held bytes of a stream come after everything pending of that stream (a later chunk would have
    // absorbed them), so flushing first keeps every stream in order.
    this.flush();
    clearTimeout(this.carryTimer);
    this.carryTimer = undefined;
    const now = Date.now();
    for (const [stream, carry] of this.carries) {
      if (now - carry.since < this.options.carryMaxMs) continue;
      this.carries.delete(stream);
      this.emit({ stream, data: carry.bytes });
    }
    this.armCarryTimer();
  }
}
