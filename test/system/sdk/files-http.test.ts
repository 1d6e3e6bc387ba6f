/**
 * The official @scalebox/sdk moving file contents over the agent's plain HTTP routes (https on the
 * agent's one port): files.write/read, and the signed uploadUrl and downloadUrl used with no token
 * at all. (The SDK's uploadFile/downloadFile cannot run from ESM: its bundle calls require("fs").)
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../helpers/agent.js";
import { startSdkSession, type SdkSandbox, type SdkSession } from "../../helpers/sdk.js";

let session: SdkSession;
let dir: { path: string; cleanup: () => Promise<void> };
let sbx: SdkSandbox;

beforeAll(async () => {
  session = await startSdkSession();
  ({ sandbox: sbx } = session);
  dir = await tempDir("agent-sdk-files-");
});
afterAll(async () => {
  await session?.close();
  await dir?.cleanup();
});

const sha = async (bytes: Uint8Array): Promise<string> => Buffer.from(await crypto.subtle.digest("SHA-256", bytes)).toString("hex");
const leftovers = async (path: string): Promise<string[]> => (await readdir(path)).filter((name) => name.includes(".upload-"));

describe("files.write and files.read", () => {
  it("writes and reads text, creating parents", async () => {
    const path = join(dir.path, "text/deeper/hello.txt");
    const info = await sbx.files.write(path, "héllo wörld\n");
    expect(info).toEqual({ name: "hello.txt", type: "file", path });
    expect(await readFile(path, "utf8")).toBe("héllo wörld\n");
    expect(await sbx.files.read(path)).toBe("héllo wörld\n");
  });

  it("writes and reads binary content intact", async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 1);
    const path = join(dir.path, "binary.bin");
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const info = await sbx.files.write(path, buffer);
    expect(info.type).toBe("file");
    expect(info.path).toBe(path);
    expect((await stat(path)).size).toBe(bytes.length);
    const base64 = await sbx.files.read(path, { format: "bytes" });
    const read = Buffer.from(base64 as string, "base64");
    expect(await sha(read)).toBe(await sha(bytes));
  });

  it("overwrites an existing file", async () => {
    const path = join(dir.path, "over.txt");
    await writeFile(path, "a much longer previous content");
    await sbx.files.write(path, "short");
    expect(await sbx.files.read(path)).toBe("short");
    expect(await leftovers(dir.path)).toEqual([]);
  });

  it("reads paths with spaces and unicode", async () => {
    const path = join(dir.path, "sp ace", "ünï 文件.txt");
    await sbx.files.write(path, "odd name");
    expect(await readFile(path, "utf8")).toBe("odd name");
    expect(await sbx.files.read(path)).toBe("odd name");
  });

  it("reports a missing file with the agent's message", async () => {
    await expect(sbx.files.read(join(dir.path, "missing.txt"))).rejects.toThrow(/file not found/);
  });

  it("refuses to write over a directory", async () => {
    const path = join(dir.path, "a-directory");
    await mkdir(path);
    await expect(sbx.files.write(path, "x")).rejects.toThrow(/is a directory/);
    expect((await stat(path)).isDirectory()).toBe(true);
    expect(await leftovers(path)).toEqual([]);
  });
});

describe("signed URLs from the SDK, used with no token", () => {
  for (const opts of [undefined, { useSignatureExpiration: 60 }] as const) {
    const label = opts === undefined ? "without expiration" : "with expiration";

    it(`uploadUrl(path) ${label}`, async () => {
      const path = join(dir.path, `signed-up ${label}.txt`);
      const url = await sbx.uploadUrl(path, opts);
      expect(url.startsWith("https://")).toBe(true);
      expect(url).toContain("signature=");
      expect(url.includes("signature_expiration=")).toBe(opts !== undefined);
      const form = new FormData();
      form.append("file", new Blob([`uploaded ${label}`]), "ignored-name.txt");
      const res = await fetch(url, { method: "POST", body: form });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ name: `signed-up ${label}.txt`, type: "file", path });
      expect(await readFile(path, "utf8")).toBe(`uploaded ${label}`);
    });

    // Issue 14, item 6: signed for no path, such a URL would let its holder write anywhere.
    it(`uploadUrl() with no path ${label}: writes nothing, with a message saying why`, async () => {
      const path = join(dir.path, `signed-anywhere-${opts === undefined ? "a" : "b"}.txt`);
      const url = await sbx.uploadUrl(undefined, opts);
      const form = new FormData();
      form.append("file", new Blob(["anywhere"]), path);
      const res = await fetch(url, { method: "POST", body: form });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { message: string }).message).toContain("names no path");
      await expect(readFile(path, "utf8")).rejects.toThrow();
    });

    it(`downloadUrl(path) ${label}`, async () => {
      const path = join(dir.path, `signed down ${label} é.txt`);
      await writeFile(path, `download ${label}`);
      const url = await sbx.downloadUrl(path, opts);
      expect(url.startsWith("https://")).toBe(true);
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(`download ${label}`);
      const tampered = url.replace(/signature=v1_./, (m) => `${m.slice(0, -1)}${m.endsWith("A") ? "B" : "A"}`);
      expect((await fetch(tampered)).status).toBe(401);
    });
  }

  it("a signed URL for another path does not open this one", async () => {
    const path = join(dir.path, "guarded.txt");
    await writeFile(path, "guarded");
    const url = await sbx.downloadUrl(join(dir.path, "other.txt"));
    const res = await fetch(url.replace("other.txt", "guarded.txt"));
    expect(res.status).toBe(401);
  });
});
