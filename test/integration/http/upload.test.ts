import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { lookupUser } from "../../../src/users.js";
import { AUTH, eventually, tempDir, type TestAgent } from "../../helpers/agent.js";
import { boundary, leftovers, multipart, type Part, postForm, RawRequest, sha256, sha256File, startFileAgent, uploadHead } from "../../helpers/form.js";

const ME = userInfo().username;
const HOME = lookupUser(ME)!.home;
const LIMIT = 1024;

let agent: TestAgent;
let limited: TestAgent;
let root: { path: string; cleanup: () => Promise<void> };
let dir: string;
let n = 0;

beforeAll(async () => {
  agent = await startFileAgent({ defaultUser: ME });
  limited = await startFileAgent({ defaultUser: ME, uploadMaxBytes: LIMIT });
  root = await tempDir("agent-upload-");
});
afterAll(async () => {
  await agent?.close();
  await limited?.close();
  await root?.cleanup();
});
beforeEach(async () => {
  dir = join(root.path, `t${++n}`);
  await mkdir(dir);
});

const upload = (parts: readonly Part[], query = "", headers: Record<string, string> = AUTH) => postForm(`${agent.url}/upload${query}`, parts, headers);
const file = (filename: string, content: string | Buffer, name = "file"): Part => ({ name, filename, content });
const field = (value: string, name = "path"): Part => ({ name, content: value });
const message = (json: unknown): string => (json as { message: string }).message;

describe("POST /upload: where files go", () => {
  it("takes the SDK's shape: file part named by its full path, then the path field", async () => {
    const target = join(dir, "new/deep/a.txt");
    const res = await upload([file(target, "hello"), field(target)]);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(res.json).toEqual({ name: "a.txt", type: "file", path: target });
    expect(await readFile(target, "utf8")).toBe("hello");
    expect(await leftovers(join(dir, "new/deep"))).toEqual([]);
  });

  it("prefers the path field over the file name, wherever the field comes", async () => {
    const after = join(dir, "after.txt");
    const before = join(dir, "sub/before.txt");
    expect((await upload([file("ignored-1.txt", "A"), field(after)])).json).toMatchObject({ path: after });
    expect((await upload([field(before), file("ignored-2.txt", "B")])).json).toMatchObject({ path: before });
    expect(await readFile(after, "utf8")).toBe("A");
    expect(await readFile(before, "utf8")).toBe("B");
    expect(await leftovers(dir)).toEqual([]);
    expect(await leftovers(HOME)).toEqual([]);
  });

  it("uses the query path when the form has no path field", async () => {
    const target = join(dir, "from-query.txt");
    const res = await upload([file("whatever.bin", "Q")], `?path=${encodeURIComponent(target)}`);
    expect(res.json).toEqual({ name: "from-query.txt", type: "file", path: target });
    expect(await readFile(target, "utf8")).toBe("Q");
  });

  it("uses the file name alone when nothing else names the target", async () => {
    const target = join(dir, "by-name.txt");
    const res = await upload([file(target, "N")]);
    expect(res.json).toEqual({ name: "by-name.txt", type: "file", path: target });
    expect(await readFile(target, "utf8")).toBe("N");
  });

  it("resolves ~ and relative paths against the caller's home", async () => {
    const sub = `.agent-upload-test-${randomBytes(4).toString("hex")}`;
    try {
      const tilde = await upload([file("x", "T"), field(`~/${sub}/t.txt`)]);
      expect(tilde.json).toEqual({ name: "t.txt", type: "file", path: `~/${sub}/t.txt` });
      expect(await readFile(join(HOME, sub, "t.txt"), "utf8")).toBe("T");
      const relative = await upload([file(`${sub}/r.txt`, "R")]);
      expect(relative.json).toEqual({ name: "r.txt", type: "file", path: `${sub}/r.txt` });
      expect(await readFile(join(HOME, sub, "r.txt"), "utf8")).toBe("R");
    } finally {
      await rm(join(HOME, sub), { recursive: true, force: true });
    }
  });

  it("puts the file inside a target that is a directory, or ends with /", async () => {
    const existing = join(dir, "existing");
    await mkdir(existing);
    const res = await upload([file("/somewhere/else/in.txt", "D"), field(existing)]);
    expect(res.json).toEqual({ name: "in.txt", type: "file", path: join(existing, "in.txt") });
    expect(await readFile(join(existing, "in.txt"), "utf8")).toBe("D");

    const fresh = `${join(dir, "fresh")}/`;
    const res2 = await upload([file("f.txt", "F")], `?path=${encodeURIComponent(fresh)}`);
    expect(res2.json).toEqual({ name: "f.txt", type: "file", path: join(dir, "fresh/f.txt") });
    expect(await readFile(join(dir, "fresh/f.txt"), "utf8")).toBe("F");
  });

  it("refuses to write over a directory named by the file name with 409", async () => {
    const existing = join(dir, "adir");
    await mkdir(existing);
    const res = await upload([file(existing, "x")]);
    expect(res.status).toBe(409);
    expect(message(res.json)).toContain("is a directory");
    expect((await stat(existing)).isDirectory()).toBe(true);
    expect(await leftovers(dir)).toEqual([]);
  });

  it("refuses a target below a regular file with 400", async () => {
    await writeFile(join(dir, "plain"), "p");
    const res = await upload([file("x", "x"), field(join(dir, "plain/below.txt"))]);
    expect(res.status).toBe(400);
    expect(message(res.json)).toContain("not a directory");
    expect(await readFile(join(dir, "plain"), "utf8")).toBe("p");
    expect(await leftovers(dir)).toEqual([]);
  });

  it("writes several files into the directory named by one path", async () => {
    const res = await upload([file("one.txt", "1"), file("nested/two.txt", "2"), field(join(dir, "many"))]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual([
      { name: "one.txt", type: "file", path: join(dir, "many/one.txt") },
      { name: "two.txt", type: "file", path: join(dir, "many/nested/two.txt") },
    ]);
    expect(await readFile(join(dir, "many/one.txt"), "utf8")).toBe("1");
    expect(await readFile(join(dir, "many/nested/two.txt"), "utf8")).toBe("2");
  });

  it("pairs several files with as many path fields, in order", async () => {
    const a = join(dir, "pa.txt");
    const b = join(dir, "pb/pb.txt");
    const res = await upload([file(a, "a"), field(a), file(b, "b"), field(b)]);
    expect(res.json).toEqual([
      { name: "pa.txt", type: "file", path: a },
      { name: "pb.txt", type: "file", path: b },
    ]);
    expect(await readFile(a, "utf8")).toBe("a");
    expect(await readFile(b, "utf8")).toBe("b");
  });

  it("resolves each file name on its own when no path is given", async () => {
    const a = join(dir, "na.txt");
    const b = join(dir, "nb.txt");
    const res = await upload([file(a, "a"), file(b, "b")]);
    expect(res.json).toEqual([
      { name: "na.txt", type: "file", path: a },
      { name: "nb.txt", type: "file", path: b },
    ]);
    expect(await readFile(b, "utf8")).toBe("b");
  });

  it("refuses several files for a path that is a regular file, changing nothing", async () => {
    await writeFile(join(dir, "single"), "keep");
    const res = await upload([file("one.txt", "1"), file("two.txt", "2"), field(join(dir, "single"))]);
    expect(res.status).toBe(409);
    expect(await readFile(join(dir, "single"), "utf8")).toBe("keep");
    expect(await leftovers(dir)).toEqual([]);
  });

  it("changes no target when one file of several cannot be written", async () => {
    const good = join(dir, "good.txt");
    await writeFile(good, "old");
    await mkdir(join(dir, "blocked"));
    const res = await upload([file(good, "new"), file(join(dir, "blocked"), "x")]);
    expect(res.status).toBe(409);
    expect(await readFile(good, "utf8")).toBe("old");
    expect(await leftovers(dir)).toEqual([]);
  });

  it("refuses an ambiguous number of path fields", async () => {
    const res = await upload([file("a", "a"), file("b", "b"), file("c", "c"), field(join(dir, "x")), field(join(dir, "y"))]);
    expect(res.status).toBe(400);
    expect(message(res.json)).toContain("ambiguous");
    expect(await leftovers(HOME)).toEqual([]);
  });

  it("writes through a symlink to the file it points to", async () => {
    const real = join(dir, "real.txt");
    const link = join(dir, "link.txt");
    await writeFile(real, "before");
    await symlink(real, link);
    const res = await upload([file(link, "after"), field(link)]);
    expect(res.status).toBe(200);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(real);
    expect(await readFile(real, "utf8")).toBe("after");
  });
});

describe("POST /upload: content, modes and owners", () => {
  it("keeps a multi-MiB binary file intact through the SDK's client (undici FormData)", async () => {
    const bytes = randomBytes(6 * 1024 * 1024 + 7);
    const target = join(dir, "random.bin");
    const form = new FormData();
    form.append("file", new Blob([bytes]), target);
    form.append("path", target);
    const res = await fetch(`${agent.url}/upload`, { method: "POST", headers: AUTH, body: form });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "random.bin", type: "file", path: target });
    expect(await sha256File(target)).toBe(sha256(bytes));
  });

  it("decodes non-ASCII file names as UTF-8", async () => {
    const target = join(dir, "ünï cødé 文件.txt");
    const form = new FormData();
    form.append("file", new Blob(["u"]), target);
    const res = await fetch(`${agent.url}/upload`, { method: "POST", headers: AUTH, body: form });
    expect(await res.json()).toEqual({ name: "ünï cødé 文件.txt", type: "file", path: target });
    expect(await readFile(target, "utf8")).toBe("u");
  });

  it("accepts an empty file", async () => {
    const target = join(dir, "empty");
    expect((await upload([file(target, "")])).status).toBe(200);
    expect((await stat(target)).size).toBe(0);
  });

  it("gives new files 0644 and keeps the mode of a file it replaces", async () => {
    const fresh = join(dir, "fresh.sh");
    await upload([file(fresh, "echo")]);
    expect((await stat(fresh)).mode & 0o777).toBe(0o644);
    const script = join(dir, "script.sh");
    await writeFile(script, "old");
    await chmod(script, 0o750);
    await upload([file(script, "new")]);
    expect((await stat(script)).mode & 0o777).toBe(0o750);
    expect(await readFile(script, "utf8")).toBe("new");
  });

  it("gives files and the parents it creates to the calling user", async () => {
    const privileged = process.getuid?.() === 0;
    const nobody = lookupUser("nobody");
    expect(nobody).toBeDefined();
    const target = join(dir, "owned/sub/file.txt");
    // nobody writes them itself, so it needs the right to: a directory it can write, in a tree it can enter.
    await chmod(root.path, 0o711);
    await chmod(dir, 0o777);
    const res = await upload([file(target, "mine"), field(target)], "", { ...AUTH, "x-user": "nobody" });
    expect(res.status).toBe(200);
    // Only a privileged agent can give files away; otherwise they stay the agent's.
    const expected = privileged ? nobody!.uid : process.getuid!();
    expect((await stat(target)).uid).toBe(expected);
    expect((await stat(join(dir, "owned"))).uid).toBe(expected);
    expect((await stat(join(dir, "owned/sub"))).uid).toBe(expected);
    expect((await stat(dir)).uid).toBe(process.getuid!());
  });

  it("refuses an unknown user", async () => {
    const res = await upload([file(join(dir, "x"), "x")], "", { ...AUTH, "x-user": "no-such-user-here" });
    expect(res.status).toBe(401);
  });

  it("accepts an upload over cleartext HTTP/2", async () => {
    const target = join(dir, "over-h2.bin");
    const bytes = randomBytes(300_000);
    const session = http2.connect(agent.url);
    try {
      const b = boundary();
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/upload", "content-type": `multipart/form-data; boundary=${b}`, ...AUTH });
        let status = 0;
        let body = "";
        stream.setEncoding("utf8");
        stream.on("response", (headers) => (status = Number(headers[":status"])));
        stream.on("data", (chunk: string) => (body += chunk));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
        stream.end(multipart([file(target, bytes), field(target)], b));
      });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toEqual({ name: "over-h2.bin", type: "file", path: target });
      expect(await sha256File(target)).toBe(sha256(bytes));
    } finally {
      session.close();
    }
  });

  it("works with curl -F", async () => {
    const local = join(root.path, `curl-src-${n}.txt`);
    await writeFile(local, "from curl");
    const target = join(dir, "curl.txt");
    const args = ["-s", "-H", `x-access-token: ${AUTH["x-access-token"]}`, "-F", `file=@${local}`, "-F", `path=${target}`, `${agent.url}/upload`];
    const out = await new Promise<string>((resolve, reject) => execFile("curl", args, (err, stdout) => (err ? reject(err) : resolve(stdout))));
    expect(JSON.parse(out)).toEqual({ name: "curl.txt", type: "file", path: target });
    expect(await readFile(target, "utf8")).toBe("from curl");
  });
});

describe("POST /upload: bad requests", () => {
  const raw = (body: string | Buffer, contentType?: string) =>
    fetch(`${agent.url}/upload`, {
      method: "POST",
      headers: contentType === undefined ? AUTH : { ...AUTH, "content-type": contentType },
      body,
    });

  it("answers bodies that are not a usable multipart form with 400 and a message", async () => {
    const b = boundary();
    const cases: Array<[string, Response]> = [
      ["json", await raw('{"a":1}', "application/json")],
      ["octet-stream", await raw("bytes", "application/octet-stream")],
      ["no content type", await raw("bytes")],
      ["no boundary", await raw("bytes", "multipart/form-data")],
      ["garbage", await raw("this is not multipart", `multipart/form-data; boundary=${b}`)],
      ["bad part header", await raw(`--${b}\r\nContent-Disposition form-data\r\n\r\nx\r\n--${b}--\r\n`, `multipart/form-data; boundary=${b}`)],
      ["fields only", await raw(multipart([field(join(dir, "x"))], b), `multipart/form-data; boundary=${b}`)],
      ["empty form", await raw(`--${b}--\r\n`, `multipart/form-data; boundary=${b}`)],
      ["unterminated", await raw(multipart([file(join(dir, "cut.txt"), "abc")], b).subarray(0, -12), `multipart/form-data; boundary=${b}`)],
      ["no target", await raw(multipart([{ name: "file", content: "x", contentType: "application/octet-stream" }], b), `multipart/form-data; boundary=${b}`)],
    ];
    for (const [name, res] of cases) {
      expect(res.status, name).toBe(400);
      expect(res.headers.get("content-type"), name).toContain("application/json");
      const text = await res.text();
      expect(message(JSON.parse(text)).length, name).toBeGreaterThan(10);
    }
    expect(await leftovers(dir)).toEqual([]);
    expect(await leftovers(HOME)).toEqual([]);
    await expect(stat(join(dir, "cut.txt"))).rejects.toThrow();
  });

  it("needs the token", async () => {
    const res = await upload([file(join(dir, "x"), "x")], "", {});
    expect(res.status).toBe(401);
    await expect(stat(join(dir, "x"))).rejects.toThrow();
  });
});

describe("POST /upload: the size limit", () => {
  const limitedUpload = (parts: readonly Part[]) => postForm(`${limited.url}/upload`, parts);

  it("accepts a file of exactly the limit", async () => {
    const target = join(dir, "exact.bin");
    expect((await limitedUpload([file(target, randomBytes(LIMIT))])).status).toBe(200);
    expect((await stat(target)).size).toBe(LIMIT);
  });

  it("answers a larger file with 413, keeping the previous file and no temporary file", async () => {
    const target = join(dir, "big.bin");
    await writeFile(target, "previous");
    const res = await limitedUpload([file(target, randomBytes(LIMIT + 1)), field(target)]);
    expect(res.status).toBe(413);
    expect(message(res.json)).toContain(`${LIMIT} bytes`);
    expect(await readFile(target, "utf8")).toBe("previous");
    expect(await leftovers(dir)).toEqual([]);
  });

  it("writes nothing when a later file of the form is too large", async () => {
    const first = join(dir, "first.txt");
    const res = await limitedUpload([file(first, "small"), file(join(dir, "second.bin"), randomBytes(LIMIT * 4))]);
    expect(res.status).toBe(413);
    await expect(stat(first)).rejects.toThrow();
    expect(await leftovers(dir)).toEqual([]);
  });

  it("answers 413 over cleartext HTTP/2 as well", async () => {
    const session = http2.connect(limited.url);
    try {
      const b = boundary();
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/upload",
          "content-type": `multipart/form-data; boundary=${b}`,
          ...AUTH,
        });
        stream.on("response", (headers) => resolve(Number(headers[":status"])));
        stream.on("error", reject);
        stream.end(multipart([file(join(dir, "h2.bin"), randomBytes(LIMIT * 2))], b));
      });
      expect(status).toBe(413);
      await eventually(async () => (await leftovers(dir)).length === 0);
      await expect(stat(join(dir, "h2.bin"))).rejects.toThrow();
    } finally {
      session.close();
    }
  });
});

describe("POST /upload: interrupted uploads", () => {
  /** A form whose single file part is `size` bytes, split where the file's bytes are half sent. */
  function halves(target: string, size: number): { b: string; first: Buffer; rest: Buffer; content: Buffer } {
    const b = boundary();
    const content = randomBytes(size);
    const body = multipart([file(target, content), field(target)], b);
    const cut = body.indexOf(content) + size / 2;
    return { b, first: body.subarray(0, cut), rest: body.subarray(cut), content };
  }

  it("an upload cut off midway leaves the previous file intact and no temporary file", async () => {
    const target = join(dir, "precious.txt");
    await writeFile(target, "the previous content");
    const { b, first, rest } = halves(target, 2 * 1024 * 1024);
    const req = new RawRequest(agent.port, uploadHead(agent.port, b, first.length + rest.length));
    await req.write(first);
    // The agent is writing its temporary file: the upload really is midway.
    await eventually(async () => (await leftovers(dir)).length === 1);
    req.destroy();
    await eventually(async () => (await leftovers(dir)).length === 0);
    expect(await readFile(target, "utf8")).toBe("the previous content");
  });

  it("an upload of a new file cut off midway leaves nothing", async () => {
    const target = join(dir, "never.bin");
    const { b, first, rest } = halves(target, 1024 * 1024);
    const req = new RawRequest(agent.port, uploadHead(agent.port, b, first.length + rest.length));
    await req.write(first);
    await eventually(async () => (await leftovers(dir)).length === 1);
    req.destroy();
    await eventually(async () => (await leftovers(dir)).length === 0);
    await expect(stat(target)).rejects.toThrow();
  });

  it("the target's directory replaced by a file midway: a 4xx saying so, never a 500", async () => {
    // Found by the fuzz campaign: removing the temporary file on the way out failed (ENOTDIR) and
    // that error, a 500, replaced the upload's own answer.
    const parent = join(dir, "replaced-parent");
    await mkdir(parent);
    const target = join(parent, "file.bin");
    const { b, first, rest } = halves(target, 1024 * 1024);
    const req = new RawRequest(agent.port, uploadHead(agent.port, b, first.length + rest.length));
    await req.write(first);
    await eventually(async () => (await leftovers(parent)).length === 1);
    await rename(parent, `${parent}-moved`);
    await writeFile(parent, "now a file");
    await req.write(rest);
    const response = await req.response();
    expect(response).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect(response).toContain("not a directory");
    expect(await readFile(parent, "utf8")).toBe("now a file");
  });

  it("replaces the previous file only once the upload is complete", async () => {
    const target = join(dir, "replaced.bin");
    await writeFile(target, "old content");
    const { b, first, rest, content } = halves(target, 1024 * 1024);
    const req = new RawRequest(agent.port, uploadHead(agent.port, b, first.length + rest.length));
    await req.write(first);
    await eventually(async () => (await leftovers(dir)).length === 1);
    expect(await readFile(target, "utf8")).toBe("old content");
    await req.write(rest);
    const response = await req.response();
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    expect(response).toContain(`"path":${JSON.stringify(target)}`);
    expect(await sha256File(target)).toBe(sha256(content));
    expect(await leftovers(dir)).toEqual([]);
  });
});
