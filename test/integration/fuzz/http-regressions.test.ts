/**
 * Defects the HTTP fuzzing found, each as the (shrunk) request that showed it.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { signature } from "../../../src/auth.js";
import { lookupUser } from "../../../src/users.js";
import { send } from "../../../harness/request.js";
import { startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";

vi.mock(import("../../../src/users.js"), async (real) => (await import("../../helpers/users.js")).withIsolatedRootHome(await real()));
/** Uploads that name no usable target are staged in the caller's home: a fresh one here. */
const rootHome = (): string => lookupUser("root")!.home;

let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  agent = await startTestAgent({ logLevel: "silent" });
  dir = await tempDir("agent-http-regressions-");
  await writeFile(join(dir.path, "data.bin"), "0123456789");
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

/** One raw HTTP/1.1 request, so that the request line is exactly what a test says. */
const rawGet = (target: string, headers: readonly string[] = []) =>
  send(agent.url, {
    family: "regression",
    transport: "http1",
    method: "GET",
    target,
    headers: [],
    raw: Buffer.from([`GET ${target} HTTP/1.1`, "Host: agent", ...headers, "Connection: close", "", ""].join("\r\n"), "latin1"),
  });

describe("download with an absolute-form request target (RFC 9112 §3.2.2)", () => {
  // Was 400 "/ is a directory": the route matched, but the file path was cut from the raw URL,
  // scheme and authority included.
  it("serves the file the URL names", async () => {
    const answer = await rawGet(`http://agent/download${dir.path}/data.bin`, [`x-access-token: ${agent.token}`, "Range: bytes=2-4"]);
    expect(answer.status).toBe(206);
    expect(answer.excerpt).toBe("234");
  });

  it("verifies a signed URL against that same path", async () => {
    const sig = signature(`${dir.path}/data.bin`, "read", "root", agent.token);
    const answer = await rawGet(`HTTP://agent:1/download${dir.path}/data.bin?signature=${encodeURIComponent(sig)}`);
    expect(answer.status).toBe(200);
    expect(answer.excerpt).toBe("0123456789");
  });
});

/** Writes `head` on a new connection and resolves with what the agent sent until it closed, or "" after `ms`. */
function answerWhileSending(head: string, ms: number): { answer: Promise<string>; socket: net.Socket } {
  const socket = net.connect(agent.port, "127.0.0.1");
  let received = "";
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => (received += chunk));
  socket.on("error", () => undefined);
  const answer = new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve(""), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
  socket.write(head);
  return { answer, socket };
}

describe("signed upload with a path field outside the signed path", () => {
  // Was: the file part was staged in the field's directory, outside what the URL allowed, and the
  // whole body streamed there before the 403 (a signed URL could fill any directory's disk).
  it("is refused before the body is read, and nothing is written outside the signed path", async () => {
    const allowed = join(dir.path, "allowed");
    const elsewhere = join(dir.path, "elsewhere");
    await mkdir(allowed);
    await mkdir(elsewhere);
    const sig = signature(allowed, "write", "root", agent.token);
    const b = "regression-boundary";
    const start = `--${b}\r\nContent-Disposition: form-data; name="path"\r\n\r\n${elsewhere}/x.bin\r\n--${b}\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n\r\n${"x".repeat(1000)}`;
    const { answer, socket } = answerWhileSending(
      [
        `POST /upload?path=${encodeURIComponent(allowed)}&signature=${encodeURIComponent(sig)} HTTP/1.1`,
        "Host: agent",
        `Content-Type: multipart/form-data; boundary=${b}`,
        "Content-Length: 10000000", // the rest never comes
        "",
        start,
      ].join("\r\n"),
      20_000,
    );
    try {
      const text = await answer;
      expect(text, "no answer while the body was still coming").toMatch(/^HTTP\/1\.1 403 /);
      expect(text).toContain("only allows writing");
      expect(await readdir(elsewhere)).toEqual([]);
    } finally {
      socket.destroy();
    }
  });
});

describe("upload whose file name holds a NUL byte (RFC 5987 filename*)", () => {
  const upload = (query: string, fileNameParam: string) =>
    send(agent.url, {
      family: "regression",
      transport: "http1",
      method: "POST",
      target: `/upload${query}`,
      headers: [
        ["x-access-token", agent.token],
        ["content-type", "multipart/form-data; boundary=b"],
      ],
      body: [Buffer.from(`--b\r\nContent-Disposition: form-data; name="file"; ${fileNameParam}\r\n\r\nhi\r\n--b--\r\n`)],
    });

  // Was 500: the name was joined to the directory without the path checks, and node refused the
  // NUL byte when the file was opened.
  it("into a directory is refused as an invalid path", async () => {
    const target = join(dir.path, "nul-dir");
    await mkdir(target);
    const answer = await upload(`?path=${encodeURIComponent(target)}`, "filename*=UTF-8''a%00b");
    expect(answer.status).toBe(400);
    expect(answer.excerpt).toContain("NUL byte");
    expect(await readdir(target)).toEqual([]);
  });

  // Was 500: with no usable target the part is staged under its own name, NUL byte and all.
  it("as the only target is refused as an invalid path, leaving nothing staged", async () => {
    const answer = await upload("", `filename*=UTF-8''${encodeURIComponent(`${dir.path}/a`)}%00b`);
    expect(answer.status).toBe(400);
    expect(answer.excerpt).toContain("NUL byte");
    expect(await readdir(rootHome())).toEqual([]);
  });
});
