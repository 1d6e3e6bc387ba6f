/**
 * The unary Filesystem RPCs against a real agent on a real port: Stat, ListDir, MakeDir, Move,
 * Remove, over every transport the agent serves and as plain curl-shaped JSON.
 */
import { Code, type Client } from "@connectrpc/connect";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileType, Filesystem } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, startTestAgent, tempDir, TRANSPORT_NAMES, type TestAgent } from "../../helpers/agent.js";
import { expectConnectError } from "../../helpers/filesystem.js";

let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };
let fs: Client<typeof Filesystem>;
const call = { headers: AUTH };
const asNobody = { headers: { ...AUTH, "x-user": "nobody" } };

beforeAll(async () => {
  agent = await startTestAgent();
  dir = await tempDir("agent-fs-rpc-");
  fs = client(Filesystem, agent.url);
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

let counter = 0;
/** A fresh directory under the test's temp dir. */
function fresh(name = "case"): string {
  const path = `${dir.path}/${name}-${++counter}`;
  mkdirSync(path);
  return path;
}

const MTIME = new Date("2024-03-05T06:07:08.250Z");

describe.each(TRANSPORT_NAMES)("over %s", (transportName) => {
  let rpc: Client<typeof Filesystem>;
  beforeAll(() => {
    rpc = client(Filesystem, agent.url, transportName);
  });

  it("Stat returns a complete entry", async () => {
    const base = fresh("stat");
    const file = `${base}/hello.txt`;
    writeFileSync(file, "hello");
    chmodSync(file, 0o644);
    chownSync(file, 65534, 65534);
    utimesSync(file, MTIME, MTIME);
    const { entry } = await rpc.stat({ path: file }, call);
    expect(entry).toMatchObject({
      name: "hello.txt",
      path: file,
      type: FileType.FILE,
      size: 5n,
      mode: 0o644,
      permissions: "-rw-r--r--",
      owner: "nobody",
      group: "nogroup",
    });
    expect(entry?.symlinkTarget).toBeUndefined();
    expect(entry?.modifiedTime?.seconds).toBe(BigInt(Math.floor(MTIME.getTime() / 1000)));
    expect(entry?.modifiedTime?.nanos).toBe(250_000_000);
  });

  it("Stat of a missing path is not_found, in words both SDKs look for", async () => {
    const missing = `${fresh("stat-missing")}/nope`;
    await expectConnectError(rpc.stat({ path: missing }, call), Code.NotFound, /not found/, /no such file or directory/, new RegExp(missing));
  });

  it("ListDir lists direct children with full entries", async () => {
    const base = fresh("list");
    writeFileSync(`${base}/b.txt`, "bb");
    mkdirSync(`${base}/a-dir`);
    writeFileSync(`${base}/a-dir/deeper.txt`, "x");
    const { entries } = await rpc.listDir({ path: base, depth: 1 }, call);
    expect(entries.map((e) => [e.name, e.path, e.type])).toEqual([
      ["a-dir", `${base}/a-dir`, FileType.DIRECTORY],
      ["b.txt", `${base}/b.txt`, FileType.FILE],
    ]);
    expect(entries[0]?.size).toBe(BigInt(statSync(`${base}/a-dir`).size));
    expect(entries[0]?.permissions).toMatch(/^d/);
  });

  it("MakeDir creates a directory with its parents and returns it; again is already_exists", async () => {
    const target = `${fresh("mkdir")}/one/two`;
    const { entry } = await rpc.makeDir({ path: target }, call);
    expect(entry).toMatchObject({ name: "two", path: target, type: FileType.DIRECTORY });
    expect(statSync(target).isDirectory()).toBe(true);
    await expectConnectError(rpc.makeDir({ path: target }, call), Code.AlreadyExists, /already exists/);
  });
});

describe("curl-shaped JSON", () => {
  const post = (method: string, body: unknown): Promise<Response> =>
    fetch(`${agent.url}/sandboxagent.Filesystem/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...AUTH },
      body: JSON.stringify(body),
    });

  it("Stat answers with lowerCamelCase fields and enum names", async () => {
    const base = fresh("json");
    symlinkSync(".", `${base}/self-link`);
    chmodSync(base, 0o700);
    utimesSync(base, MTIME, MTIME);
    const res = await post("Stat", { path: base });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const { entry } = (await res.json()) as { entry: Record<string, unknown> };
    expect(entry).toMatchObject({
      name: base.split("/").pop(),
      type: "FILE_TYPE_DIRECTORY",
      path: base,
      permissions: "drwx------",
      owner: "root",
      group: "root",
      modifiedTime: "2024-03-05T06:07:08.250Z",
    });
    // int64 travels as a decimal string in protobuf JSON; uint32 as a number.
    expect(entry.size).toBe(String(statSync(base).size));
    expect(entry.mode).toBe(0o700);
    expect(Object.keys(entry).every((key) => /^[a-z][A-Za-z]*$/.test(key))).toBe(true);

    const link = (await (await post("Stat", { path: `${base}/self-link` })).json()) as { entry: Record<string, unknown> };
    expect(link.entry).toMatchObject({ symlinkTarget: ".", type: "FILE_TYPE_DIRECTORY", permissions: "lrwxrwxrwx" });
  });

  it("errors are non-200 JSON with a Connect code name and the message", async () => {
    const res = await post("Stat", { path: `${dir.path}/not-here` });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("not_found");
    expect(body.message).toContain("no such file or directory");
  });

  it("ListDir with depth and MakeDir with the entry", async () => {
    const base = fresh("json-list");
    const made = (await (await post("MakeDir", { path: `${base}/made` })).json()) as { entry: Record<string, unknown> };
    expect(made.entry).toMatchObject({ name: "made", type: "FILE_TYPE_DIRECTORY", path: `${base}/made` });
    const listed = (await (await post("ListDir", { path: base, depth: 1 })).json()) as { entries: Array<Record<string, unknown>> };
    expect(listed.entries.map((e) => e.path)).toEqual([`${base}/made`]);
  });
});

describe("Stat", () => {
  it("reports a directory's size and drwx permissions", async () => {
    const base = fresh("stat-dir");
    chmodSync(base, 0o755);
    const { entry } = await fs.stat({ path: base }, call);
    expect(entry).toMatchObject({ type: FileType.DIRECTORY, permissions: "drwxr-xr-x", mode: 0o755 });
    expect(entry?.size).toBe(BigInt(statSync(base).size));
    expect(entry?.size).toBeGreaterThan(0n);
  });

  it("reports a symlink itself, with its target and the type of what it points to", async () => {
    const base = fresh("stat-link");
    writeFileSync(`${base}/target.txt`, "t");
    symlinkSync("target.txt", `${base}/link`);
    symlinkSync("missing-target", `${base}/dangling`);
    const { entry } = await fs.stat({ path: `${base}/link` }, call);
    expect(entry).toMatchObject({ name: "link", type: FileType.FILE, symlinkTarget: "target.txt", permissions: "lrwxrwxrwx" });
    expect(entry?.size).toBe(BigInt("target.txt".length));
    const dangling = (await fs.stat({ path: `${base}/dangling` }, call)).entry;
    expect(dangling).toMatchObject({ type: FileType.UNSPECIFIED, symlinkTarget: "missing-target" });
  });

  it("shows set-id and sticky bits the way ls does", async () => {
    const base = fresh("stat-bits");
    chmodSync(base, 0o1777);
    writeFileSync(`${base}/tool`, "");
    chmodSync(`${base}/tool`, 0o4755);
    expect((await fs.stat({ path: base }, call)).entry?.permissions).toBe("drwxrwxrwt");
    expect((await fs.stat({ path: `${base}/tool` }, call)).entry).toMatchObject({ permissions: "-rwsr-xr-x", mode: 0o4755 });
  });

  it("resolves ~ against the caller's home", async () => {
    const { entry } = await fs.stat({ path: "~" }, call);
    expect(entry?.path).toBe("/root");
  });

  it("refuses a path that cannot be resolved as invalid_argument", async () => {
    await expectConnectError(fs.stat({ path: "~someone/else" }, call), Code.InvalidArgument, /invalid path/);
    await expectConnectError(fs.stat({ path: "/tmp/a\0b" }, call), Code.InvalidArgument, /NUL/);
  });
});

describe("ListDir", () => {
  it("depth 0 and 1 both list direct children only; depth 2 adds the next level with full paths", async () => {
    const base = fresh("depth");
    mkdirSync(`${base}/a/b/c`, { recursive: true });
    writeFileSync(`${base}/a/file.txt`, "");
    writeFileSync(`${base}/a/b/c/deep.txt`, "");
    const paths = async (depth: number) => (await fs.listDir({ path: base, depth }, call)).entries.map((e) => e.path);
    expect(await paths(0)).toEqual([`${base}/a`]);
    expect(await paths(1)).toEqual([`${base}/a`]);
    expect(await paths(2)).toEqual([`${base}/a`, `${base}/a/b`, `${base}/a/file.txt`]);
    expect(await paths(999)).toEqual([`${base}/a`, `${base}/a/b`, `${base}/a/b/c`, `${base}/a/b/c/deep.txt`, `${base}/a/file.txt`]);
  });

  it("lists symlinks with their targets but never follows them, so loops end", async () => {
    const base = fresh("loops");
    mkdirSync(`${base}/d/e`, { recursive: true });
    symlinkSync("..", `${base}/d/e/up`);
    symlinkSync(".", `${base}/d/self`);
    symlinkSync(base, `${base}/root-link`);
    symlinkSync("nowhere", `${base}/d/dangling`);
    const { entries } = await fs.listDir({ path: base, depth: 999 }, call);
    expect(entries.map((e) => e.path.slice(base.length))).toEqual(["/d", "/d/dangling", "/d/e", "/d/e/up", "/d/self", "/root-link"]);
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(byName.get("up")).toMatchObject({ symlinkTarget: "..", type: FileType.DIRECTORY });
    expect(byName.get("root-link")).toMatchObject({ symlinkTarget: base, type: FileType.DIRECTORY });
    expect(byName.get("dangling")).toMatchObject({ symlinkTarget: "nowhere", type: FileType.UNSPECIFIED });
    expect(byName.get("e")?.symlinkTarget).toBeUndefined();
  });

  it("lists a directory of 10,000 entries completely", async () => {
    const base = fresh("big");
    for (let i = 0; i < 10_000; i++) writeFileSync(`${base}/f${String(i).padStart(5, "0")}`, "");
    const { entries } = await fs.listDir({ path: base, depth: 1 }, call);
    expect(entries).toHaveLength(10_000);
    expect(new Set(entries.map((e) => e.name)).size).toBe(10_000);
    expect(entries[0]?.name).toBe("f00000");
    expect(entries[9_999]?.name).toBe("f09999");
    expect(entries.every((e) => e.type === FileType.FILE && e.owner === "root")).toBe(true);
  });

  it("a missing path is not_found; a file is invalid_argument", async () => {
    const base = fresh("list-errors");
    writeFileSync(`${base}/file.txt`, "");
    await expectConnectError(fs.listDir({ path: `${base}/missing`, depth: 1 }, call), Code.NotFound, /not found/, /no such file or directory/);
    await expectConnectError(fs.listDir({ path: `${base}/file.txt`, depth: 1 }, call), Code.InvalidArgument, /not a directory/);
  });
});

describe("MakeDir", () => {
  it("gives every directory it creates to the caller, and only those", async () => {
    const base = fresh("mkdir-owner");
    // nobody makes them itself, so it needs the right to: a directory it can write, in a tree it can enter.
    chmodSync(dir.path, 0o711);
    chmodSync(base, 0o777);
    const { entry } = await fs.makeDir({ path: `${base}/p/q/r` }, asNobody);
    expect(entry).toMatchObject({ owner: "nobody", group: "nogroup" });
    for (const path of [`${base}/p`, `${base}/p/q`, `${base}/p/q/r`]) expect(statSync(path).uid).toBe(65534);
    expect(statSync(base).uid).toBe(0);
  });

  it("a file in the way is invalid_argument, whether at the path or above it", async () => {
    const base = fresh("mkdir-file");
    writeFileSync(`${base}/file`, "");
    await expectConnectError(fs.makeDir({ path: `${base}/file` }, call), Code.InvalidArgument, /not a directory/);
    await expectConnectError(fs.makeDir({ path: `${base}/file/sub` }, call), Code.InvalidArgument, /not a directory/);
  });

  it("an existing directory is already_exists, also through a symlink", async () => {
    const base = fresh("mkdir-exists");
    symlinkSync(".", `${base}/link`);
    await expectConnectError(fs.makeDir({ path: base }, call), Code.AlreadyExists, /already exists/);
    await expectConnectError(fs.makeDir({ path: `${base}/link` }, call), Code.AlreadyExists, /already exists/);
  });
});

describe("Move", () => {
  it("renames and returns the destination's entry, creating missing parents for the caller", async () => {
    const base = fresh("move");
    chmodSync(dir.path, 0o711);
    chmodSync(base, 0o777);
    writeFileSync(`${base}/a.txt`, "payload");
    const { entry } = await fs.move({ source: `${base}/a.txt`, destination: `${base}/new/deeper/b.txt` }, asNobody);
    expect(entry).toMatchObject({ name: "b.txt", path: `${base}/new/deeper/b.txt`, type: FileType.FILE, size: 7n });
    expect(existsSync(`${base}/a.txt`)).toBe(false);
    expect(readFileSync(`${base}/new/deeper/b.txt`, "utf8")).toBe("payload");
    expect(statSync(`${base}/new`).uid).toBe(65534);
  });

  it("replaces an existing file, as rename does", async () => {
    const base = fresh("move-replace");
    writeFileSync(`${base}/a`, "new");
    writeFileSync(`${base}/b`, "old");
    await fs.move({ source: `${base}/a`, destination: `${base}/b` }, call);
    expect(readFileSync(`${base}/b`, "utf8")).toBe("new");
  });

  it("a missing source is not_found and leaves nothing behind", async () => {
    const base = fresh("move-missing");
    await expectConnectError(
      fs.move({ source: `${base}/ghost`, destination: `${base}/made/up` }, call),
      Code.NotFound,
      /not found/,
      /no such file or directory/,
    );
    expect(existsSync(`${base}/made`)).toBe(false);
  });

  it("a directory onto a non-empty directory is refused; empty paths are invalid_argument", async () => {
    const base = fresh("move-errors");
    mkdirSync(`${base}/src`);
    mkdirSync(`${base}/dst/full`, { recursive: true });
    const err = await expectConnectError(fs.move({ source: `${base}/src`, destination: `${base}/dst` }, call), Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/not empty/);
    await expectConnectError(fs.move({ source: "", destination: `${base}/x` }, call), Code.InvalidArgument);
  });

  it("moves a tree across file systems, keeping modes, owners, times and symlinks", async () => {
    // /tmp and /dev/shm are different file systems here (checked below); if they were not, a
    // directory on /work is. The test must really cross, or it proves nothing.
    const other = ["/dev/shm", "/work"].find((path) => existsSync(path) && statSync(path).dev !== statSync(dir.path).dev);
    expect(other, "a second file system to move to").toBeDefined();
    const remote = mkdtempSync(`${other}/agent-fs-exdev-`);
    try {
      const source = `${remote}/tree`;
      mkdirSync(`${source}/sub`, { recursive: true });
      writeFileSync(`${source}/sub/data.bin`, Buffer.alloc(256 * 1024, 7));
      chmodSync(`${source}/sub/data.bin`, 0o640);
      chownSync(`${source}/sub/data.bin`, 65534, 65534);
      writeFileSync(`${source}/run.sh`, "#!/bin/sh\n");
      chmodSync(`${source}/run.sh`, 0o755);
      symlinkSync("sub/data.bin", `${source}/link`);
      symlinkSync("/nowhere/at/all", `${source}/dangling`);
      chmodSync(`${source}/sub`, 0o750);
      utimesSync(`${source}/sub/data.bin`, MTIME, MTIME);
      utimesSync(`${source}/sub`, MTIME, MTIME);

      const landing = fresh("exdev");
      const destination = `${landing}/moved`;
      expect(statSync(source).dev).not.toBe(statSync(landing).dev);
      const { entry } = await fs.move({ source, destination }, call);
      expect(entry).toMatchObject({ path: destination, type: FileType.DIRECTORY });

      expect(existsSync(source)).toBe(false);
      expect(readFileSync(`${destination}/sub/data.bin`).equals(Buffer.alloc(256 * 1024, 7))).toBe(true);
      const data = statSync(`${destination}/sub/data.bin`);
      expect(data.mode & 0o7777).toBe(0o640);
      expect([data.uid, data.gid]).toEqual([65534, 65534]);
      expect(data.mtime.getTime()).toBe(MTIME.getTime());
      expect(statSync(`${destination}/sub`).mode & 0o7777).toBe(0o750);
      expect(statSync(`${destination}/sub`).mtime.getTime()).toBe(MTIME.getTime());
      expect(statSync(`${destination}/run.sh`).mode & 0o7777).toBe(0o755);
      expect(lstatSync(`${destination}/link`).isSymbolicLink()).toBe(true);
      expect(readlinkSync(`${destination}/link`)).toBe("sub/data.bin");
      expect(readlinkSync(`${destination}/dangling`)).toBe("/nowhere/at/all");
      // No staging directory left next to the destination.
      expect(execFileSync("ls", ["-A", landing], { encoding: "utf8" }).trim()).toBe("moved");
    } finally {
      rmSync(remote, { recursive: true, force: true });
    }
  });
});

describe("Remove", () => {
  it("removes a file, and a directory with everything in it", async () => {
    const base = fresh("remove");
    writeFileSync(`${base}/file`, "");
    mkdirSync(`${base}/tree/a/b`, { recursive: true });
    writeFileSync(`${base}/tree/a/b/leaf`, "");
    await fs.remove({ path: `${base}/file` }, call);
    await fs.remove({ path: `${base}/tree` }, call);
    expect(existsSync(`${base}/file`)).toBe(false);
    expect(existsSync(`${base}/tree`)).toBe(false);
  });

  it("removes a symlink, never what it points to", async () => {
    const base = fresh("remove-link");
    mkdirSync(`${base}/kept`);
    writeFileSync(`${base}/kept/precious`, "");
    symlinkSync(`${base}/kept`, `${base}/link`);
    mkdirSync(`${base}/holder`);
    symlinkSync(`${base}/kept`, `${base}/holder/inner-link`);
    await fs.remove({ path: `${base}/link` }, call);
    await fs.remove({ path: `${base}/holder` }, call);
    expect(existsSync(`${base}/link`)).toBe(false);
    expect(existsSync(`${base}/holder`)).toBe(false);
    expect(existsSync(`${base}/kept/precious`)).toBe(true);
  });

  it("a missing path is removed already (as rm -f, envd and the platform do); / and an empty path are refused", async () => {
    await fs.remove({ path: `${dir.path}/never-was` }, call);
    await fs.remove({ path: `${dir.path}/never-was/nor/below` }, call);
    expect(existsSync(`${dir.path}/never-was`)).toBe(false);
    await expectConnectError(fs.remove({ path: "/" }, call), Code.InvalidArgument, /root directory/);
    await expectConnectError(fs.remove({ path: "" }, call), Code.InvalidArgument, /required/);
    expect(existsSync("/root")).toBe(true);
  });
});
