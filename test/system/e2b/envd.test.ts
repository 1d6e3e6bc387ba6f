/**
 * The unmodified `e2b` SDK (2.51.0) against the agent in place of envd: commands, terminals and
 * files, every call going through envd's own routes and services on the agent's one port. The
 * control-plane stand-in initialises the agent as E2B's orchestrator does (token, env vars,
 * default user `user` in /home/user).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { CommandExitError, FileNotFoundError, InvalidArgumentError, Sandbox, TimeoutError } from "e2b";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { readMetadataAsAgent } from "../../../src/user-fs/metadata.js";
import { lookupUser } from "../../../src/users.js";
import { eventually } from "../../helpers/agent.js";
import { startE2bSession, type E2bSession } from "../../helpers/e2b.js";
import { ensureUser } from "../../helpers/linux-users.js";

// Root's login shell must not read this machine's dotfiles (test/helpers/users.ts).
vi.mock(import("../../../src/users.js"), async (real) => (await import("../../helpers/users.js")).withIsolatedRootHome(await real()));

let session: E2bSession;
let sbx: Sandbox;
const HOME = "/home/user";

beforeAll(async () => {
  ensureUser("user");
  session = await startE2bSession();
  sbx = await Sandbox.create({ envs: { FROM_CREATE: "created" } });
});
afterAll(async () => {
  await session?.close();
});

/** A fresh directory in the user's home, owned by the user. */
function fresh(name: string): string {
  const dir = `${HOME}/e2b-${name}-${process.pid}-${Date.now()}`;
  execFileSync("install", ["-d", "-o", "user", "-g", "user", dir]);
  return dir;
}

describe("commands", () => {
  it("run as the default user in its home, with the sandbox's and the call's env vars", async () => {
    const result = await sbx.commands.run('echo "$(whoami) $(pwd) $FROM_CREATE $FROM_CALL"', { envs: { FROM_CALL: "call" } });
    expect(result).toMatchObject({ exitCode: 0, stdout: "user /home/user created call\n", stderr: "" });
  });

  it("run as another user, in another directory", async () => {
    const result = await sbx.commands.run("whoami; pwd", { user: "root", cwd: "/tmp" });
    expect(result.stdout).toBe("root\n/tmp\n");
  });

  it("a failing command throws with its exit code and stderr", async () => {
    const error = await sbx.commands.run("echo oops >&2; exit 3").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(CommandExitError);
    expect(error).toMatchObject({ exitCode: 3, stderr: "oops\n" });
  });

  it("a missing cwd is an InvalidArgumentError", async () => {
    await expect(sbx.commands.run("true", { cwd: "/nonexistent/dir" })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("stdin is off by default: a reader ends at once instead of waiting", async () => {
    const result = await sbx.commands.run("cat; echo end");
    expect(result.stdout).toBe("end\n");
  });

  it("background: connect, send stdin, close stdin, wait", async () => {
    const handle = await sbx.commands.run("cat", { background: true, stdin: true });
    const attached = await sbx.commands.connect(handle.pid);
    await sbx.commands.sendStdin(handle.pid, "hello ");
    await sbx.commands.sendStdin(handle.pid, "world\n");
    await sbx.commands.closeStdin(handle.pid);
    const result = await attached.wait();
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe("hello world\n");
  });

  it("list shows a running command with its config; kill ends it and its children", async () => {
    const handle = await sbx.commands.run("sleep 300 & sleep 300; wait", { background: true });
    await eventually(async () => (await sbx.commands.list()).some((p) => p.pid === handle.pid));
    const listed = (await sbx.commands.list()).find((p) => p.pid === handle.pid)!;
    expect(listed.cmd).toBe("/bin/bash");
    expect(listed.args).toContain("sleep 300 & sleep 300; wait");
    const group = (): string[] => {
      try {
        return execFileSync("pgrep", ["-g", String(handle.pid)])
          .toString()
          .trim()
          .split("\n");
      } catch {
        return [];
      }
    };
    // The shell and its two sleeps, once the shell has started them.
    await eventually(() => group().length >= 3);
    expect(await sbx.commands.kill(handle.pid)).toBe(true);
    await expect(handle.wait()).rejects.toThrow();
    await eventually(() => group().length === 0);
    expect(await sbx.commands.kill(handle.pid)).toBe(false);
  });

  it("timeoutMs is the command's lifetime", async () => {
    await expect(sbx.commands.run("sleep 30", { timeoutMs: 1_000 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it("streams output to callbacks as it comes", async () => {
    const chunks: string[] = [];
    const result = await sbx.commands.run("for i in 1 2 3; do echo line$i; done; echo err >&2", {
      onStdout: (data) => void chunks.push(data),
      onStderr: (data) => void chunks.push(`E:${data}`),
    });
    expect(result.stdout).toBe("line1\nline2\nline3\n");
    expect(chunks.join("")).toContain("line3");
    expect(chunks.join("")).toContain("E:err");
  });

  it("large output on both streams arrives whole and in order", async () => {
    const lines = (from: number, to: number): string => Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join("");
    const result = await sbx.commands.run("seq 1 150000; seq 1 50000 >&2");
    expect(result.stdout.length).toBe(lines(1, 150_000).length);
    expect(result.stdout === lines(1, 150_000)).toBe(true);
    expect(result.stderr === lines(1, 50_000)).toBe(true);
  });
});

describe("pty", () => {
  it("create, type, resize and kill a terminal", async () => {
    let output = "";
    const decoder = new TextDecoder();
    const terminal = await sbx.pty.create({
      cols: 80,
      rows: 24,
      onData: (data) => {
        output += decoder.decode(data, { stream: true });
      },
    });
    await eventually(() => output.length > 0, 15_000);
    await sbx.pty.resize(terminal.pid, { cols: 123, rows: 45 });
    await sbx.pty.sendInput(terminal.pid, new TextEncoder().encode("echo size=$(tput cols)x$(tput lines)\n"));
    await eventually(() => output.includes("size=123x45"), 15_000);
    expect(await sbx.pty.kill(terminal.pid)).toBe(true);
    await expect(terminal.wait()).rejects.toThrow();
  });
});

describe("files", () => {
  it("write and read text, bytes and streams, as the user, mode 0644", async () => {
    const dir = fresh("rw");
    const info = await sbx.files.write(`${dir}/a.txt`, "hello ✓");
    expect(info).toMatchObject({ path: `${dir}/a.txt`, name: "a.txt", type: "file" });
    expect(await sbx.files.read(`${dir}/a.txt`)).toBe("hello ✓");
    expect(Buffer.from(await sbx.files.read(`${dir}/a.txt`, { format: "bytes" })).toString()).toBe("hello ✓");
    const st = statSync(`${dir}/a.txt`);
    expect([st.uid, st.mode & 0o777]).toEqual([lookupUser("user")!.uid, 0o644]);
    await sbx.files.write(`${dir}/empty.txt`, "");
    expect(await sbx.files.read(`${dir}/empty.txt`)).toBe("");
  });

  it("write many files in one request, relative names under home, parents made", async () => {
    const dir = fresh("many");
    const rel = dir.slice(HOME.length + 1);
    const written = await sbx.files.write([
      { path: `${dir}/one.txt`, data: "1" },
      { path: `${rel}/sub/two.txt`, data: "2" },
    ]);
    expect(written.map((w) => w.path)).toEqual([`${dir}/one.txt`, `${dir}/sub/two.txt`]);
    expect(readFileSync(`${dir}/sub/two.txt`, "utf8")).toBe("2");
  });

  it("gzip both ways, and octet-stream uploads", async () => {
    const dir = fresh("gzip");
    const big = "compressible ".repeat(10_000);
    await sbx.files.write(`${dir}/g.txt`, big, { gzip: true });
    expect(readFileSync(`${dir}/g.txt`, "utf8")).toBe(big);
    expect(await sbx.files.read(`${dir}/g.txt`, { gzip: true })).toBe(big);
    await sbx.files.write(`${dir}/o.txt`, "octets", { useOctetStream: true });
    expect(readFileSync(`${dir}/o.txt`, "utf8")).toBe("octets");
    // What the SDK sends with gzip, by hand: the body arrives decompressed.
    const res = await fetch(`${session.agent.url}/files?path=${encodeURIComponent(`${dir}/raw.txt`)}`, {
      method: "POST",
      headers: { "x-access-token": session.agent.token, "content-type": "application/octet-stream", "content-encoding": "gzip" },
      body: gzipSync("raw gzip"),
    });
    expect(res.status).toBe(200);
    expect(readFileSync(`${dir}/raw.txt`, "utf8")).toBe("raw gzip");
  });

  it("exists, getInfo, makeDir, rename, remove", async () => {
    const dir = fresh("ops");
    expect(await sbx.files.exists(`${dir}/nope`)).toBe(false);
    expect(await sbx.files.makeDir(`${dir}/d/e`)).toBe(true);
    expect(await sbx.files.makeDir(`${dir}/d/e`)).toBe(false);
    await sbx.files.write(`${dir}/d/e/f.txt`, "f");
    const info = await sbx.files.getInfo(`${dir}/d/e/f.txt`);
    expect(info).toMatchObject({ name: "f.txt", type: "file", size: 1, owner: "user", group: "user", permissions: "-rw-r--r--" });
    const moved = await sbx.files.rename(`${dir}/d/e/f.txt`, `${dir}/g.txt`);
    expect(moved.path).toBe(`${dir}/g.txt`);
    await sbx.files.remove(`${dir}/d`);
    await sbx.files.remove(`${dir}/never-was`);
    expect(existsSync(`${dir}/d`)).toBe(false);
    await expect(sbx.files.getInfo(`${dir}/d`)).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(sbx.files.read(`${dir}/d`)).rejects.toBeInstanceOf(FileNotFoundError);
  });

  it("list with depth, in lexical depth-first order", async () => {
    const dir = fresh("list");
    mkdirSync(`${dir}/b/c`, { recursive: true });
    writeFileSync(`${dir}/a.txt`, "a");
    writeFileSync(`${dir}/b/c/d.txt`, "d");
    expect((await sbx.files.list(dir)).map((e) => e.name)).toEqual(["a.txt", "b"]);
    expect((await sbx.files.list(dir, { depth: 3 })).map((e) => e.path.slice(dir.length + 1))).toEqual(["a.txt", "b", "b/c", "b/c/d.txt"]);
  });

  it("watchDir recursive, with entries, sees new directories and writes in them", async () => {
    const dir = fresh("watch");
    const events: Array<{ name: string; type: string; entry?: { name: string } }> = [];
    const handle = await sbx.files.watchDir(dir, (event) => void events.push(event), { recursive: true, includeEntry: true });
    try {
      mkdirSync(`${dir}/sub`);
      await eventually(() => events.some((e) => e.name === "sub" && e.type === "create"));
      writeFileSync(`${dir}/sub/f.txt`, "x");
      await eventually(() => events.some((e) => e.name === "sub/f.txt" && e.type === "write"));
      expect(events.find((e) => e.name === "sub/f.txt" && e.type === "write")?.entry?.name).toBe("f.txt");
    } finally {
      await handle.stop();
    }
  });

  it("signed URLs: upload and download with no token, expired ones refused", async () => {
    const dir = fresh("signed");
    const up = await sbx.uploadUrl(`${dir}/s.txt`, { useSignatureExpiration: 60_000 });
    const form = new FormData();
    form.append("file", new Blob(["signed upload"]), "s.txt");
    expect((await fetch(up, { method: "POST", body: form })).status).toBe(200);
    const down = await sbx.downloadUrl(`${dir}/s.txt`);
    const res = await fetch(down);
    expect([res.status, await res.text()]).toEqual([200, "signed upload"]);
    const expired = new URL(await sbx.downloadUrl(`${dir}/s.txt`, { useSignatureExpiration: 1 }));
    expired.searchParams.set("signature_expiration", "1");
    expect((await fetch(expired)).status).toBe(401);
  });
});

describe("auth", () => {
  it("every envd route and RPC but /health wants the token", async () => {
    const url = session.agent.url;
    expect((await fetch(`${url}/health`)).ok).toBe(true);
    expect((await fetch(`${url}/files?path=/etc/hostname`)).status).toBe(401);
    expect((await fetch(`${url}/envs`)).status).toBe(401);
    const rpc = await fetch(`${url}/process.Process/List`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(rpc.status).toBe(401);
    const init = await fetch(`${url}/init`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ accessToken: "stolen" }),
    });
    expect(init.status).toBe(401);
  });

  it("GET /envs gives the sandbox's variables", async () => {
    const res = await fetch(`${session.agent.url}/envs`, { headers: { "x-access-token": session.agent.token } });
    expect(await res.json()).toMatchObject({ FROM_CREATE: "created" });
  });
});

describe("GET /files encodings", () => {
  it("gzip when accepted, identity for ranges and when not, the bytes the same", async () => {
    const dir = fresh("enc");
    const text = "zipped ".repeat(5_000);
    writeFileSync(`${dir}/z.txt`, text);
    const url = `${session.agent.url}/files?path=${encodeURIComponent(`${dir}/z.txt`)}`;
    const auth = { "x-access-token": session.agent.token };
    const raw = async (headers: Record<string, string>) => {
      const { request } = await import("node:http");
      return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        request(url, { headers: { ...auth, ...headers } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        })
          .on("error", reject)
          .end();
      });
    };
    const zipped = await raw({ "accept-encoding": "gzip" });
    expect([zipped.status, zipped.headers["content-encoding"]]).toEqual([200, "gzip"]);
    const { gunzipSync } = await import("node:zlib");
    expect(gunzipSync(zipped.body).toString()).toBe(text);
    expect(zipped.body.length).toBeLessThan(text.length / 10);
    const plain = await raw({});
    expect([plain.headers["content-encoding"], plain.body.toString()]).toEqual([undefined, text]);
    const ranged = await raw({ "accept-encoding": "gzip", range: "bytes=0-5" });
    expect([ranged.status, ranged.headers["content-encoding"], ranged.body.toString()]).toEqual([206, undefined, "zipped"]);
    expect((await raw({ "accept-encoding": "gzip;q=0" })).headers["content-encoding"]).toBeUndefined();
  });
});

describe("envd's JSON, read as plain text", () => {
  it("a process's end says exitCode 0 outright, on both faces", async () => {
    for (const service of ["process.Process", "sandboxagent.Process"]) {
      const request = Buffer.from(JSON.stringify({ process: { cmd: "/bin/true" } }));
      const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), request]);
      envelope.writeUInt32BE(request.length, 1);
      const res = await fetch(`${session.agent.url}/${service}/Start`, {
        method: "POST",
        headers: {
          "content-type": "application/connect+json",
          "x-access-token": session.agent.token,
          authorization: `Basic ${Buffer.from("root:").toString("base64")}`,
        },
        body: envelope,
      });
      const body = Buffer.from(await res.arrayBuffer());
      const messages: string[] = [];
      for (let at = 0; at < body.length; ) {
        const length = body.readUInt32BE(at + 1);
        messages.push(body.subarray(at + 5, at + 5 + length).toString());
        at += 5 + length;
      }
      const end = messages.map((m) => JSON.parse(m) as { event?: { end?: Record<string, unknown> } }).find((m) => m.event?.end !== undefined);
      expect(end?.event?.end, service).toMatchObject({ exitCode: 0, exited: true });
    }
  });
});

describe("file metadata (user.e2b.* extended attributes)", () => {
  it("an upload's metadata comes back in its entries, and the next upload replaces it", async () => {
    const dir = fresh("meta");
    const written = await sbx.files.write(`${dir}/m.txt`, "m", { metadata: { Author: "mish", purpose: "test" } });
    expect(written.metadata).toEqual({ author: "mish", purpose: "test" });
    expect((await sbx.files.getInfo(`${dir}/m.txt`)).metadata).toEqual({ author: "mish", purpose: "test" });
    expect((await sbx.files.list(dir)).find((e) => e.name === "m.txt")?.metadata).toEqual({ author: "mish", purpose: "test" });
    // On the file itself, where envd keeps it.
    expect(readMetadataAsAgent(`${dir}/m.txt`)).toEqual({ author: "mish", purpose: "test" });
    await sbx.files.write(`${dir}/m.txt`, "again");
    expect((await sbx.files.getInfo(`${dir}/m.txt`)).metadata ?? {}).toEqual({});
    const refused = await fetch(`${session.agent.url}/files?path=${encodeURIComponent(`${dir}/bad.txt`)}`, {
      method: "POST",
      headers: { "x-access-token": session.agent.token, "content-type": "application/octet-stream", "x-metadata-big": "v".repeat(5000) },
      body: "x",
    });
    expect([refused.status, existsSync(`${dir}/bad.txt`)]).toEqual([400, false]);
  });
});
