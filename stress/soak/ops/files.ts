/**
 * Upload then download a file of random size and content: SHA-256 of what was sent against
 * SHA-256 of what came back; sometimes a Range request too, its slice compared byte for byte.
 * The file is removed afterwards (Filesystem/Remove) so the scratch stays small.
 */
import { createHash, randomBytes } from "node:crypto";
import { Filesystem } from "../../../src/gen/sandboxagent/api_pb.js";
import type { HttpVersion } from "../http.js";
import { coin, pick, randomInt, randomSize } from "../random.js";
import { LostBytes } from "../tally.js";
import { downloadTarget, type OpContext, type Operation } from "./context.js";

const MAX_FILE_BYTES = 8 * 1024 * 1024;
const VERSIONS: readonly HttpVersion[] = ["1.1", "2"];

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

/**
 * The SDK's form: the file part named by the full target path, then the `path` field after the
 * bytes; without the field the agent must take the part's filename.
 */
function multipart(path: string, content: Buffer, withPathField: boolean): { body: Buffer; type: string } {
  const boundary = `soak${randomBytes(12).toString("hex")}`;
  const parts = [
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${path}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    content,
    Buffer.from("\r\n"),
  ];
  if (withPathField) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n${path}\r\n`));
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

async function upload(ctx: OpContext, path: string, content: Buffer): Promise<void> {
  const form = multipart(path, content, coin());
  const res = await ctx.conn.http.request({
    version: pick(VERSIONS),
    method: "POST",
    path: "/upload",
    headers: { "content-type": form.type },
    body: form.body,
    signal: ctx.signal,
  });
  if (res.status < 200 || res.status > 299) throw new Error(`upload of ${content.length} B answered ${res.status}: ${res.body.toString().slice(0, 200)}`);
}

async function downloadWhole(ctx: OpContext, path: string, content: Buffer): Promise<void> {
  const res = await ctx.conn.http.request({ version: pick(VERSIONS), method: "GET", path: downloadTarget(path), signal: ctx.signal });
  if (res.status !== 200) throw new Error(`download answered ${res.status}: ${res.body.toString().slice(0, 200)}`);
  if (sha256(res.body) !== sha256(content)) {
    throw new LostBytes(content.length, `download of ${content.length} B came back as ${res.body.length} B with another SHA-256`);
  }
}

async function downloadSlice(ctx: OpContext, path: string, content: Buffer): Promise<void> {
  const first = randomInt(0, content.length - 1);
  const last = randomInt(first, content.length - 1);
  const res = await ctx.conn.http.request({
    version: pick(VERSIONS),
    method: "GET",
    path: downloadTarget(path),
    headers: { range: `bytes=${first}-${last}` },
    signal: ctx.signal,
  });
  const range = `bytes ${first}-${last}/${content.length}`;
  if (res.status !== 206) throw new Error(`Range ${range} answered ${res.status}`);
  if (res.headers["content-range"] !== range) throw new Error(`Range ${range} answered Content-Range ${String(res.headers["content-range"])}`);
  const expected = content.subarray(first, last + 1);
  if (!res.body.equals(expected)) {
    throw new LostBytes(expected.length, `Range ${range} came back as ${res.body.length} B with other content`);
  }
}

export const files: Operation = {
  name: "files",
  weight: 3,
  async run(ctx) {
    const path = ctx.freshPath("file");
    const content = randomBytes(randomSize(1, MAX_FILE_BYTES));
    await upload(ctx, path, content);
    await downloadWhole(ctx, path, content);
    if (coin()) await downloadSlice(ctx, path, content);
    await ctx.conn.client(Filesystem).remove({ path }, { signal: ctx.signal });
  },
};
