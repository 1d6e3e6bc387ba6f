/**
 * The Jupyter messaging protocol (v5.3) on the wire: a message is a multipart ZeroMQ frame list
 * `[routing ids…, "<IDS|MSG>", signature, header, parent_header, metadata, content, buffers…]`,
 * signed with HMAC-SHA256 over the four JSON parts. Pure functions: no sockets here.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

export const PROTOCOL_VERSION = "5.3";
const DELIMITER = "<IDS|MSG>";

export interface Header {
  readonly msg_id: string;
  readonly msg_type: string;
  readonly session: string;
  readonly username: string;
  readonly date: string;
  readonly version: string;
}

export type JsonObject = Record<string, unknown>;

export interface JupyterMessage {
  readonly header: Header;
  /** Empty object when the message answers nothing. */
  readonly parentHeader: Partial<Header>;
  readonly metadata: JsonObject;
  readonly content: JsonObject;
  readonly buffers: readonly Buffer[];
}

export class WireError extends Error {}

export function newHeader(msgType: string, session: string, username: string): Header {
  return {
    msg_id: randomUUID(),
    msg_type: msgType,
    session,
    username,
    date: new Date().toISOString(),
    version: PROTOCOL_VERSION,
  };
}

function sign(key: Buffer, parts: readonly Buffer[]): string {
  // An empty key means "unsigned" in the spec; we always generate one, but accept kernels told so.
  if (key.length === 0) return "";
  const hmac = createHmac("sha256", key);
  for (const part of parts) hmac.update(part);
  return hmac.digest("hex");
}

/** Frames to send from a DEALER socket (no routing ids). */
export function encode(key: Buffer, message: Omit<JupyterMessage, "buffers"> & { buffers?: readonly Buffer[] }): Buffer[] {
  const parts = [message.header, message.parentHeader, message.metadata, message.content].map((part) => Buffer.from(JSON.stringify(part)));
  return [Buffer.from(DELIMITER), Buffer.from(sign(key, parts)), ...parts, ...(message.buffers ?? [])];
}

function parseObject(frame: Buffer, what: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(frame.toString("utf8"));
  } catch {
    throw new WireError(`${what} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new WireError(`${what} is not an object`);
  return value as JsonObject;
}

/** Parses received frames and checks the signature; throws WireError on anything malformed or forged. */
export function decode(key: Buffer, frames: readonly Buffer[]): JupyterMessage {
  const at = frames.findIndex((frame) => frame.length === DELIMITER.length && frame.toString("latin1") === DELIMITER);
  if (at < 0 || frames.length < at + 6) throw new WireError("missing <IDS|MSG> delimiter or parts");
  const signature = frames[at + 1]!;
  const parts = frames.slice(at + 2, at + 6);
  const expected = Buffer.from(sign(key, parts));
  if (expected.length !== signature.length || !timingSafeEqual(expected, signature)) throw new WireError("bad signature");
  const header = parseObject(parts[0]!, "header");
  if (typeof header.msg_type !== "string" || typeof header.msg_id !== "string") throw new WireError("header without msg_type");
  return {
    header: header as unknown as Header,
    parentHeader: parseObject(parts[1]!, "parent_header") as Partial<Header>,
    metadata: parseObject(parts[2]!, "metadata"),
    content: parseObject(parts[3]!, "content"),
    buffers: frames.slice(at + 6),
  };
}
