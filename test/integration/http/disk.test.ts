/**
 * Uploads against real filesystem limits: a full disk (507), a read-only filesystem (403) and a
 * target on another filesystem than where the upload was staged (EXDEV). They need small tmpfs
 * mounts, so they run where the tests may mount (root with CAP_SYS_ADMIN, as in the sandbox).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, type TestAgent } from "../../helpers/agent.js";
import { leftovers, type Part, postForm, sha256, sha256File, startFileAgent } from "../../helpers/form.js";

function mountTmpfs(options: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), "agent-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { stdio: "ignore" });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

function unmount(dir: string | undefined): void {
  if (dir === undefined) return;
  execFileSync("umount", [dir], { stdio: "ignore" });
  rmSync(dir, { recursive: true, force: true });
}

const isRoot = process.getuid?.() === 0;
const small = isRoot ? mountTmpfs("size=256k,mode=0755") : undefined;
const readOnly = small !== undefined ? mountTmpfs("ro,size=64k,mode=0755") : undefined;
const canMount = small !== undefined && readOnly !== undefined;

let agent: TestAgent;
let local: { path: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  agent = await startFileAgent({ defaultUser: userInfo().username });
  local = await tempDir("agent-disk-");
});
afterAll(async () => {
  await agent?.close();
  await local?.cleanup();
  unmount(small);
  unmount(readOnly);
});

const file = (filename: string, content: string | Buffer): Part => ({ name: "file", filename, content });
const path = (value: string): Part => ({ name: "path", content: value });
const message = (json: unknown): string => (json as { message: string }).message;

describe.runIf(canMount)("filesystem limits", () => {
  it("a full disk answers 507, keeps the previous file and leaves no temporary file", async () => {
    const target = join(small!, "full.bin");
    await writeFile(target, "previous");
    const res = await postForm(`${agent.url}/upload`, [file(target, randomBytes(1024 * 1024)), path(target)]);
    expect(res.status).toBe(507);
    expect(message(res.json)).toContain("no space left on device");
    expect(await readFile(target, "utf8")).toBe("previous");
    expect(await leftovers(small!)).toEqual([]);
  });

  it("a read-only filesystem answers 403", async () => {
    const target = join(readOnly!, "ro.txt");
    const res = await postForm(`${agent.url}/upload`, [file(target, "x")]);
    expect(res.status).toBe(403);
    expect(message(res.json)).toContain("read-only file system");
  });

  it("moves a file staged on one filesystem to a target on another", async () => {
    const bytes = randomBytes(100 * 1024);
    const staged = join(local.path, "staged-here.bin");
    const target = join(small!, "moved.bin");
    // The file name (known first) points at the local disk; the path field (last) at the tmpfs.
    const res = await postForm(`${agent.url}/upload`, [file(staged, bytes), path(target)]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ name: "moved.bin", type: "file", path: target });
    expect(await sha256File(target)).toBe(sha256(bytes));
    expect(await leftovers(local.path)).toEqual([]);
    expect(await leftovers(small!)).toEqual([]);
  });

  it("a full target filesystem during that move answers 507 and cleans both sides", async () => {
    const staged = join(local.path, "too-big.bin");
    const target = join(small!, "too-big.bin");
    const res = await postForm(`${agent.url}/upload`, [file(staged, randomBytes(1024 * 1024)), path(target)]);
    expect(res.status).toBe(507);
    expect(await leftovers(local.path)).toEqual([]);
    expect(await leftovers(small!)).toEqual([]);
    await expect(readFile(target)).rejects.toThrow();
  });
});
