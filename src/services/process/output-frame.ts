/**
 * A StartResponse or ConnectResponse carrying output, encoded by hand together with its envelope
 * in one buffer: the output is copied once (connect-fixes/preencoded.ts says why). Both responses
 * have the same shape: event (1) → ProcessEvent, data (2) → DataEvent, stdout/stderr/pty (1/2/3).
 */
import { claimHeadroom } from "../../supervisor/headroom.js";
import type { Stream } from "./coalescer.js";

const STREAM_FIELD: Readonly<Record<Stream, number>> = { stdout: 1, stderr: 2, pty: 3 };
const LENGTH_DELIMITED = 2;
const EVENT_TAG = (1 << 3) | LENGTH_DELIMITED;
const DATA_TAG = (2 << 3) | LENGTH_DELIMITED;

function varintLength(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function writeVarint(buffer: Buffer, at: number, n: number): number {
  let rest = n;
  while (rest >= 0x80) {
    buffer[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  buffer[at++] = rest;
  return at;
}

/**
 * The frame for `data`. When `data` was read from a child with room in front (supervisor/
 * headroom.ts), the header is written there and the frame is a view of the same memory: the
 * output is not copied at all.
 */
export function outputFrame(stream: Stream, data: Uint8Array): Uint8Array {
  const dataEvent = 1 + varintLength(data.length) + data.length;
  const event = 1 + varintLength(dataEvent) + dataEvent;
  const response = 1 + varintLength(event) + event;
  const headerBytes = 5 + response - data.length;
  const claimed = claimHeadroom(data, headerBytes);
  const frame = claimed === undefined ? Buffer.allocUnsafe(5 + response) : Buffer.from(claimed.buffer, claimed.byteOffset, claimed.length);
  frame[0] = 0; // envelope flags: an uncompressed message
  frame.writeUInt32BE(response, 1);
  let at = 5;
  frame[at++] = EVENT_TAG;
  at = writeVarint(frame, at, event);
  frame[at++] = DATA_TAG;
  at = writeVarint(frame, at, dataEvent);
  frame[at++] = (STREAM_FIELD[stream] << 3) | LENGTH_DELIMITED;
  at = writeVarint(frame, at, data.length);
  if (claimed === undefined) frame.set(data, at);
  return frame;
}
