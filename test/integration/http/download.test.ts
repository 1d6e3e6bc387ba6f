import { randomBytes } from "node:crypto";
import { execFile } from "node:child_process";
import { mkdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lookupUser } from "../../../src/users.js";
import { AUTH, eventually, tempDir, type TestAgent } from "../../helpers/agent.js";
import { downloadPath, openDescriptors, sha256, startFileAgent } from "../../helpers/form.js";

let agent: TestAgent;
let dir: string;
let cleanup: () => Promise<void>;
const TEXT = "0123456789abcdefghij"; // 20 bytes
let textFile: string;
let modified: Date;

beforeAll(async () => {
  agent = await startFileAgent({ defaultUser: userInfo().username });
  ({ path: dir, cleanup } = await tempDir("agent-download-"));
  textFile = join(dir, "text.txt");
  await writeFile(textFile, TEXT);
  modified = new Date("2024-03-01T12:34:56Z");
  await utimes(textFile, modified, modified);
});
afterAll(async () => {
  await agent?.close();
  await cleanup?.();
});

const get = (path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Response> =>
  fetch(`${agent.url}${path}`, { method, headers: { ...AUTH, ...headers } });

describe("GET /download", () => {
  it("streams the whole file with its validators and type", async () => {
    const res = await get(downloadPath(textFile));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(TEXT);
    expect(res.headers.get("content-length")).toBe("20");
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(res.headers.get("last-modified")).toBe(modified.toUTCString());
    expect(res.headers.get("etag")).toMatch(/^"[0-9a-z]+-[0-9a-z]+-[0-9a-z]+"$/);
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="text.txt"');
  });

  it("keeps a multi-MiB binary file intact", async () => {
    const bytes = randomBytes(5 * 1024 * 1024 + 123);
    const path = join(dir, "random.bin");
    await writeFile(path, bytes);
    const res = await get(downloadPath(path));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(bytes.length);
    expect(sha256(body)).toBe(sha256(bytes));
  });

  it("serves an empty file", async () => {
    const path = join(dir, "empty.json");
    await writeFile(path, "");
    const res = await get(downloadPath(path));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("0");
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await res.text()).toBe("");
  });

  it("answers HEAD with the headers of GET and no body", async () => {
    const res = await get(downloadPath(textFile), {}, "HEAD");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("20");
    expect(res.headers.get("etag")).toBeTruthy();
    expect(await res.text()).toBe("");
  });

  it("answers a missing file with 404 and a JSON message", async () => {
    const res = await get(downloadPath(join(dir, "missing.txt")));
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toContain("application/json");
    const body = (await res.json()) as { message: string };
    expect(body.message).toContain("file not found");
    expect(body.message).toContain(join(dir, "missing.txt"));
  });

  it("refuses a directory with a clear 400", async () => {
    const res = await get(downloadPath(dir));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string };
    expect(body.message).toContain("is a directory");
  });

  it("refuses a FIFO instead of hanging on it", async () => {
    const fifo = join(dir, "pipe");
    await new Promise<void>((resolve, reject) => execFile("mkfifo", [fifo], (err) => (err ? reject(err) : resolve())));
    const res = await get(downloadPath(fifo));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain("not a regular file");
  });

  it("decodes spaces, unicode, %2F and reserved characters in the path", async () => {
    const sub = join(dir, "dïr with space");
    await mkdir(sub);
    const name = "naïve 文件 #1?&+;.txt";
    await writeFile(join(sub, name), "unicode");
    expect(await (await get(downloadPath(join(sub, name)))).text()).toBe("unicode");
    // a slash may arrive encoded too
    const encodedSlashes = `/download/${encodeURIComponent(join(sub, name).slice(1))}`;
    expect(encodedSlashes).toContain("%2F");
    const res = await get(encodedSlashes);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("unicode");
  });

  it("decodes the path exactly once", async () => {
    await writeFile(join(dir, "a%20b.txt"), "literal percent");
    await writeFile(join(dir, "a b.txt"), "space");
    const res = await get(downloadPath(join(dir, "a%20b.txt")));
    expect(downloadPath(join(dir, "a%20b.txt"))).toContain("a%2520b.txt");
    expect(await res.text()).toBe("literal percent");
    expect(await (await get(downloadPath(join(dir, "a b.txt")))).text()).toBe("space");
  });

  it("refuses a path that is not valid percent-encoded UTF-8 with 400", async () => {
    const res = await get("/download/tmp/%C3%28");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain("%C3%28");
  });

  it("names non-ASCII files in Content-Disposition per RFC 6266/8187", async () => {
    const name = 'résumé "final" ✓.txt';
    await writeFile(join(dir, name), "x");
    const res = await get(downloadPath(join(dir, name)));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toBe(
      `attachment; filename="r_sum_ _final_ _.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%20%E2%9C%93.txt`,
    );
  });

  it("resolves ~ against the caller's home", async () => {
    const home = lookupUser(userInfo().username)!.home;
    const sub = join(home, `.agent-download-test-${randomBytes(4).toString("hex")}`);
    await mkdir(sub);
    try {
      await writeFile(join(sub, "h.txt"), "home");
      const rel = sub.slice(home.length + 1);
      const res = await get(`/download/~/${encodeURIComponent(rel)}/h.txt`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("home");
    } finally {
      await rm(sub, { recursive: true, force: true });
    }
  });

  it("needs the token", async () => {
    const res = await fetch(`${agent.url}${downloadPath(textFile)}`);
    expect(res.status).toBe(401);
  });
});

describe("ranges", () => {
  const range = (value: string, extra: Record<string, string> = {}) => get(downloadPath(textFile), { range: value, ...extra });

  it("serves a single closed range", async () => {
    const res = await range("bytes=2-5");
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe("bytes 2-5/20");
    expect(res.headers.get("content-length")).toBe("4");
    expect(await res.text()).toBe("2345");
  });

  it("serves an open-ended range", async () => {
    const res = await range("bytes=15-");
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe("bytes 15-19/20");
    expect(await res.text()).toBe("fghij");
  });

  it("serves a suffix range, and the whole file for a suffix longer than it", async () => {
    const res = await range("bytes=-3");
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe("bytes 17-19/20");
    expect(await res.text()).toBe("hij");
    const longer = await range("bytes=-500");
    expect(longer.status).toBe(206);
    expect(longer.headers.get("content-range")).toBe("bytes 0-19/20");
    expect(await longer.text()).toBe(TEXT);
  });

  it("clamps a last position beyond the end", async () => {
    const res = await range("bytes=18-1000");
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe("bytes 18-19/20");
    expect(await res.text()).toBe("ij");
  });

  it("answers an unsatisfiable range with 416 and the size", async () => {
    for (const value of ["bytes=20-", "bytes=100-200", "bytes=-0"]) {
      const res = await range(value);
      expect(res.status, value).toBe(416);
      expect(res.headers.get("content-range"), value).toBe("bytes */20");
      await res.text();
    }
  });

  it("ignores malformed Range headers and other units (200, whole file)", async () => {
    for (const value of ["bytes=abc", "bytes=5-2", "items=0-3", "bytes=", "bytes 0-3", "bytes=1-2-3"]) {
      const res = await range(value);
      expect(res.status, value).toBe(200);
      expect(await res.text(), value).toBe(TEXT);
    }
  });

  it("answers several ranges with the whole file", async () => {
    const res = await range("bytes=0-1, 5-6");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(TEXT);
  });

  it("ignores Range on HEAD", async () => {
    const res = await get(downloadPath(textFile), { range: "bytes=0-1" }, "HEAD");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("20");
  });

  it("honours If-Range only while the ETag or date still matches", async () => {
    const etag = (await get(downloadPath(textFile), {}, "HEAD")).headers.get("etag")!;
    const matching = await range("bytes=0-3", { "if-range": etag });
    expect(matching.status).toBe(206);
    expect(await matching.text()).toBe("0123");

    const stale = await range("bytes=0-3", { "if-range": '"something-else"' });
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe(TEXT);

    const weak = await range("bytes=0-3", { "if-range": `W/${etag}` });
    expect(weak.status).toBe(200);
    await weak.text();

    const sameDate = await range("bytes=0-3", { "if-range": modified.toUTCString() });
    expect(sameDate.status).toBe(206);
    await sameDate.text();

    const olderDate = await range("bytes=0-3", { "if-range": new Date(modified.getTime() - 60_000).toUTCString() });
    expect(olderDate.status).toBe(200);
    expect(await olderDate.text()).toBe(TEXT);
  });

  it("resumes a download with curl -C (Range from the bytes already there)", async () => {
    const out = join(dir, "partial-copy.txt");
    await writeFile(out, TEXT.slice(0, 7));
    const args = ["-s", "-f", "-C", "-", "-o", out, "-H", `x-access-token: ${AUTH["x-access-token"]}`, `${agent.url}${downloadPath(textFile)}`];
    await new Promise<void>((resolve, reject) => execFile("curl", args, (err) => (err ? reject(err) : resolve())));
    expect(await readFile(out, "utf8")).toBe(TEXT);
  });
});

describe("conditional requests", () => {
  it("answers If-None-Match with the current ETag with 304", async () => {
    const etag = (await get(downloadPath(textFile))).headers.get("etag")!;
    const res = await get(downloadPath(textFile), { "if-none-match": etag });
    expect(res.status).toBe(304);
    expect(res.headers.get("etag")).toBe(etag);
    expect(await res.text()).toBe("");
    const weakForm = await get(downloadPath(textFile), { "if-none-match": `"nope", W/${etag}` });
    expect(weakForm.status).toBe(304);
    const star = await get(downloadPath(textFile), { "if-none-match": "*" });
    expect(star.status).toBe(304);
  });

  it("sends the file when If-None-Match names another version", async () => {
    const res = await get(downloadPath(textFile), { "if-none-match": '"other"' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(TEXT);
  });

  it("answers If-Modified-Since at or after the modification with 304, before it with 200", async () => {
    expect((await get(downloadPath(textFile), { "if-modified-since": modified.toUTCString() })).status).toBe(304);
    const later = new Date(modified.getTime() + 3600_000).toUTCString();
    expect((await get(downloadPath(textFile), { "if-modified-since": later })).status).toBe(304);
    const earlier = new Date(modified.getTime() - 1000).toUTCString();
    const res = await get(downloadPath(textFile), { "if-modified-since": earlier });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(TEXT);
    const garbage = await get(downloadPath(textFile), { "if-modified-since": "not a date" });
    expect(garbage.status).toBe(200);
    await garbage.text();
  });

  it("lets If-None-Match win over If-Modified-Since", async () => {
    const res = await get(downloadPath(textFile), { "if-none-match": '"other"', "if-modified-since": modified.toUTCString() });
    expect(res.status).toBe(200);
    await res.text();
  });

  it("changes the ETag when the file changes", async () => {
    const path = join(dir, "changing.txt");
    await writeFile(path, "one");
    const first = (await get(downloadPath(path))).headers.get("etag")!;
    await writeFile(path, "two!");
    const res = await get(downloadPath(path), { "if-none-match": first });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("two!");
    expect(res.headers.get("etag")).not.toBe(first);
  });

  it("answers a failed If-Match with 412", async () => {
    const res = await get(downloadPath(textFile), { "if-match": '"other"' });
    expect(res.status).toBe(412);
    await res.text();
  });
});

describe("streaming", () => {
  it("closes the file when the client goes away mid-download", async () => {
    const path = join(dir, "big.bin");
    await writeFile(path, randomBytes(32 * 1024 * 1024));
    const { size } = await stat(path);
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${agent.url}${downloadPath(path)}`, { headers: AUTH }, (res) => {
        expect(res.statusCode).toBe(200);
        expect(Number(res.headers["content-length"])).toBe(size);
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", (err) => (req.destroyed ? undefined : reject(err)));
    });
    await eventually(async () => (await openDescriptors(path)) === 0);
  });

  it("serves downloads over cleartext HTTP/2 too", async () => {
    const session = http2.connect(agent.url);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const stream = session.request({ ":path": downloadPath(textFile), range: "bytes=10-", ...AUTH });
        let text = "";
        stream.setEncoding("utf8");
        stream.on("response", (headers) => expect(headers[":status"]).toBe(206));
        stream.on("data", (chunk: string) => (text += chunk));
        stream.on("end", () => resolve(text));
        stream.on("error", reject);
      });
      expect(body).toBe("abcdefghij");
    } finally {
      session.close();
    }
  });
});
