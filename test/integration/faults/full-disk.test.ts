/**
 * Fault: the disk fills up. How the disk is made full: each test writes onto small tmpfs mounts
 * created for this file (`mount -t tmpfs -o size=1m` for bytes, `-o nr_inodes=…` for inodes),
 * under the system temporary directory, unmounted at the end. Mounting needs root with
 * CAP_SYS_ADMIN, as in the sandboxes and CI; where it is missing the file FAILS with that reason
 * instead of skipping, so a run without these checks cannot pass for one with them.
 * (test/integration/http/disk.test.ts mounts the same way but skips when it cannot.)
 *
 * What must hold: the caller gets a clear error (HTTP 507, Connect resource_exhausted, ENOSPC for a
 * process's own write), nothing half-written appears at the destination, what was there before
 * is intact, the space taken during the attempt is given back (a descriptor kept on a removed
 * staging file would keep its blocks allocated: statfs shows it), and the agent serves others.
 * test/integration/http/disk.test.ts covers a 507 upload and a cross-filesystem upload; this file adds the
 * space and descriptors given back, HTTP/2, inode exhaustion, Filesystem/Move and processes.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmdirSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, statfs, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Filesystem, Process } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { boundary, multipart, type Part } from "../../helpers/form.js";
import { collect } from "../../helpers/process.js";
import { baselineOf, expectBackToBaseline, expectServesOthers, postOnce, withClients, type Held } from "../../helpers/faults.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Mounts a fresh tmpfs, or throws saying why the test cannot run here. */
function mountTmpfs(options: string): string {
  const dir = mkdtempSync(join(tmpdir(), "agent-fault-disk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    rmdirSync(dir);
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`full-disk tests need to mount a tmpfs (root with CAP_SYS_ADMIN); mount -o ${options} failed: ${stderr ?? String(err)}`);
  }
  return dir;
}

/**
 * Unmounting fails while anything (a leaked descriptor of the agent) still holds the mount: then
 * the mount is detached anyway, so that the machine keeps nothing, and the failure is reported.
 */
function unmount(dir: string | undefined): void {
  if (dir === undefined) return;
  try {
    execFileSync("umount", [dir], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    execFileSync("umount", ["--lazy", dir], { stdio: "ignore" });
    rmdirSync(dir);
    throw new Error(`${dir} was still in use after the tests: ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err)}`);
  }
  rmdirSync(dir);
}

let agent: TestAgent;
let local: { path: string; cleanup: () => Promise<void> };
/** 1 MiB of space. (Undefined at run time until mounted: the unmounts below allow for that.) */
let small: string;
/** Room for only a handful of files (and space enough for them). */
let fewInodes: string;
let baseline: Held;

beforeAll(async () => {
  small = mountTmpfs("size=1m,mode=0755");
  fewInodes = mountTmpfs("size=4m,nr_inodes=8,mode=0755");
  agent = await startTestAgent({ kernelPoolSize: 0 });
  local = await tempDir("agent-fault-disk-local-");
  // Warm-up: an upload, a move across file systems and a process, each done once.
  const staged = join(local.path, "warm.txt");
  expect((await upload("h1", [file(join(small, "warm.txt"), "warm")])).status).toBe(200);
  await writeFile(staged, "warm");
  await withClients(agent.url, "h2", async (clients) => {
    await clients.of(Filesystem).move({ source: staged, destination: join(small, "warm-moved.txt") }, { headers: AUTH });
    await collect(clients.of(Process).start({ process: { cmd: "true", args: [], envs: {} } }, { headers: AUTH }));
  });
  await rm(join(small, "warm.txt"));
  await rm(join(small, "warm-moved.txt"));
  await expectServesOthers(agent);
  baseline = await baselineOf(agent);
});

afterAll(async () => {
  await agent?.close();
  await local?.cleanup();
  try {
    unmount(small);
  } finally {
    unmount(fewInodes);
  }
});

const file = (filename: string, content: string | Buffer): Part => ({ name: "file", filename, content });
const sha256 = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex");

/** Free blocks and inodes of a file system: what a failed write must give back. */
async function freeOn(dir: string): Promise<{ blocks: number; inodes: number }> {
  const st = await statfs(dir);
  return { blocks: st.bfree, inodes: st.ffree };
}

/** Everything in `dir` but what the test put there: staging files, half-copied trees. */
async function strangers(dir: string, expected: readonly string[]): Promise<string[]> {
  return (await readdir(dir)).filter((name) => !expected.includes(name));
}

/** A multipart upload over a connection of its own, HTTP/1.1 or HTTP/2. */
async function upload(transport: "h1" | "h2", parts: readonly Part[]): Promise<{ status: number; message: string }> {
  const b = boundary();
  const body = multipart(parts, b);
  const headers = { ...AUTH, "content-type": `multipart/form-data; boundary=${b}` };
  let status: number;
  let text: string;
  if (transport === "h1") {
    ({ status, body: text } = await postOnce(agent.url, "/upload", headers, body));
  } else {
    const session = http2.connect(agent.url);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/upload", ...headers });
      ({ status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        let code = 0;
        let out = "";
        stream.setEncoding("utf8");
        stream.on("response", (h) => (code = Number(h[":status"])));
        stream.on("data", (chunk: string) => (out += chunk));
        stream.on("end", () => resolve({ status: code, text: out }));
        stream.on("error", reject);
        stream.end(body);
      }));
      // An answer given before the body was read must also end the stream (RST_STREAM NO_ERROR),
      // or the client is left blocked on the rest of its body and the agent holds the request.
      await eventually(() => stream.closed, 10_000).catch(() => {
        throw new Error(`the agent answered ${status} but left the upload's HTTP/2 stream open`);
      });
      // The reset says "stop sending": node's client keeps the unsent body until told to drop it.
      stream.destroy();
    } finally {
      session.close();
    }
  }
  let message = text;
  try {
    message = (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    // not JSON: keep the text
  }
  return { status, message };
}

describe.each(["h1", "h2"] as const)("an upload that fills the disk (%s)", (transport) => {
  it("answers 507, keeps the previous file, leaves nothing behind and gives the space back", async () => {
    const target = join(small, `full-${transport}.bin`);
    await writeFile(target, "previous");
    const free = await freeOn(small);

    const res = await upload(transport, [file(target, randomBytes(2 * MiB))]);
    expect(res.status).toBe(507);
    expect(res.message).toContain("no space left on device");
    expect(await readFile(target, "utf8")).toBe("previous");
    expect(await strangers(small, [`full-${transport}.bin`])).toEqual([]);
    await expectBackToBaseline(agent, baseline);
    // Checked after the descriptors: a removed file still open would keep its blocks.
    expect(await freeOn(small)).toEqual(free);

    // The agent writes again as soon as there is room.
    const fits = randomBytes(64 * KiB);
    expect((await upload(transport, [file(target, fits)])).status).toBe(200);
    expect(sha256(await readFile(target))).toBe(sha256(fits));
    await rm(target);
    await expectServesOthers(agent);
  });
});

describe("an upload to a file system out of inodes", () => {
  it("answers 507 before writing anything, and the existing files are untouched", async () => {
    // Use up every inode: files until creating one fails.
    const made: string[] = [];
    for (let i = 0; ; i++) {
      try {
        await writeFile(join(fewInodes, `ballast-${i}`), `${i}`);
        made.push(`ballast-${i}`);
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
        break;
      }
    }
    expect(made.length).toBeGreaterThan(0);
    try {
      const res = await upload("h1", [file(join(fewInodes, "new.txt"), "content")]);
      expect(res.status).toBe(507);
      expect(res.message).toContain("no space left on device");
      expect(await strangers(fewInodes, made)).toEqual([]);
      for (const [i, name] of made.entries()) expect(await readFile(join(fewInodes, name), "utf8")).toBe(`${i}`);
      await expectServesOthers(agent);
      await expectBackToBaseline(agent, baseline);
    } finally {
      for (const name of made) await rm(join(fewInodes, name));
    }
  });
});

describe("Filesystem/Move across file systems onto a full one", () => {
  async function expectDiskFull(call: Promise<unknown>): Promise<ConnectError> {
    const err = await call.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err, "the move should have failed").toBeInstanceOf(ConnectError);
    expect(Code[err!.code]).toBe(Code[Code.ResourceExhausted]);
    expect(err!.rawMessage).toContain("no space left on device");
    return err!;
  }

  it("refuses a file too large with resource_exhausted, keeps the source and leaves no half-written destination", async () => {
    const source = join(local.path, "big.bin");
    const content = randomBytes(2 * MiB);
    await writeFile(source, content);
    const destination = join(small, "big.bin");
    const free = await freeOn(small);

    await withClients(agent.url, "h2", async (clients) => {
      const err = await expectDiskFull(clients.of(Filesystem).move({ source, destination }, { headers: AUTH }));
      expect(err.rawMessage).toContain(source);
    });
    expect(sha256(await readFile(source))).toBe(sha256(content));
    await expect(stat(destination)).rejects.toThrow();
    expect(await strangers(small, [])).toEqual([]);
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
    expect(await freeOn(small)).toEqual(free);
    await rm(source);
  });

  it("refuses a tree whose later files do not fit, keeping the whole source and removing the partial copy", async () => {
    const source = join(local.path, "tree");
    const files = new Map<string, Buffer>();
    await mkdir(join(source, "sub"), { recursive: true });
    // 300 KiB each: the first few fit in 1 MiB, the rest do not.
    for (const name of ["a.bin", "b.bin", "sub/c.bin", "sub/d.bin", "sub/e.bin"]) {
      const bytes = randomBytes(300 * KiB);
      files.set(name, bytes);
      await writeFile(join(source, name), bytes);
    }
    const destination = join(small, "tree");
    const free = await freeOn(small);

    await withClients(agent.url, "h1", async (clients) => {
      await expectDiskFull(clients.of(Filesystem).move({ source, destination }, { headers: AUTH }));
    });
    for (const [name, bytes] of files) expect(sha256(await readFile(join(source, name)))).toBe(sha256(bytes));
    await expect(stat(destination)).rejects.toThrow();
    expect(await strangers(small, [])).toEqual([]);
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
    expect(await freeOn(small)).toEqual(free);
    await rm(source, { recursive: true });
  });
});

describe("a process that writes into a full disk", () => {
  it("gets ENOSPC itself and exits with an error; the agent is unaffected", async () => {
    const target = join(small, "from-process.bin");
    const free = await freeOn(small);
    await withClients(agent.url, "h2", async (clients) => {
      const got = await collect(
        clients.of(Process).start({ process: { cmd: "/bin/sh", args: ["-c", `head -c ${2 * MiB} /dev/zero > ${target}`], envs: {} } }, { headers: AUTH }),
      );
      expect(got.error).toBeUndefined();
      expect(got.end).toMatchObject({ exitCode: 1, exited: true, status: "exit status 1" });
      expect(got.stderr.toString()).toContain("No space left on device");
      await expectServesOthers(agent);
      // The caller cleans up through the API; the space comes back.
      await clients.of(Filesystem).remove({ path: target }, { headers: AUTH });
    });
    expect(await freeOn(small)).toEqual(free);
    await expectBackToBaseline(agent, baseline);
  });
});
