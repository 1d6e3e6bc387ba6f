/**
 * Finds where one execution's output ends in a byte stream the driver shares with user code: the
 * shell prints `marker + status + "\n"` after the cell, with a marker that is random per
 * execution. Text before it is the cell's output, decoded as UTF-8 as it streams (a character split
 * across reads is held until complete); only the few bytes that might be the start of the marker
 * are ever held back, so memory stays bounded whatever the cell prints.
 */
import { TextDecoder } from "node:util";

/** Longer than any exit status; more means the stream is not what the driver wrote. */
const MAX_STATUS_BYTES = 64;

interface Armed {
  readonly marker: Buffer;
  readonly onText: (text: string) => void;
  readonly onEnd: (status: string) => void;
  readonly decoder: TextDecoder;
  /** Unsent bytes: a possible marker prefix, or (once the marker is seen) the status so far. */
  held: Buffer;
  markerSeen: boolean;
}

/** The length of the longest proper prefix of `marker` that `bytes` ends with. */
function partialMarker(bytes: Buffer, marker: Buffer): number {
  for (let k = Math.min(marker.length - 1, bytes.length); k > 0; k--) {
    if (bytes.subarray(bytes.length - k).equals(marker.subarray(0, k))) return k;
  }
  return 0;
}

export class SentinelScanner {
  private armed: Armed | undefined;

  /** Starts routing the stream to one execution until `marker` arrives. */
  arm(marker: string, onText: (text: string) => void, onEnd: (status: string) => void): void {
    this.armed = { marker: Buffer.from(marker, "utf8"), onText, onEnd, decoder: new TextDecoder("utf-8"), held: Buffer.alloc(0), markerSeen: false };
  }

  get isArmed(): boolean {
    return this.armed !== undefined;
  }

  /** Bytes from the stream. Output while nothing is armed belongs to no execution and is dropped. */
  push(chunk: Buffer): void {
    const armed = this.armed;
    if (armed === undefined) return;
    let bytes = armed.held.length > 0 ? Buffer.concat([armed.held, chunk]) : chunk;
    if (!armed.markerSeen) {
      const at = bytes.indexOf(armed.marker);
      if (at < 0) {
        const keep = partialMarker(bytes, armed.marker);
        this.emit(armed, bytes.subarray(0, bytes.length - keep));
        // A copy, so a large chunk is not kept alive by the few bytes held from its end.
        armed.held = Buffer.from(bytes.subarray(bytes.length - keep));
        return;
      }
      this.emit(armed, bytes.subarray(0, at));
      armed.markerSeen = true;
      bytes = bytes.subarray(at + armed.marker.length);
    }
    const newline = bytes.indexOf(0x0a);
    if (newline < 0 && bytes.length <= MAX_STATUS_BYTES) {
      armed.held = Buffer.from(bytes);
      return;
    }
    const status = bytes.subarray(0, newline < 0 ? MAX_STATUS_BYTES : newline).toString("latin1");
    this.finish(armed);
    // Whatever follows the marker comes from something the cell left running: no execution owns it.
    armed.onEnd(status);
  }

  /** The stream ended without a marker (the process died): delivers what is left. */
  flush(): void {
    const armed = this.armed;
    if (armed === undefined) return;
    if (!armed.markerSeen) this.emit(armed, armed.held);
    this.finish(armed);
  }

  private finish(armed: Armed): void {
    this.armed = undefined;
    const rest = armed.decoder.decode();
    if (rest !== "") armed.onText(rest);
  }

  private emit(armed: Armed, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const text = armed.decoder.decode(bytes, { stream: true });
    if (text !== "") armed.onText(text);
  }
}
