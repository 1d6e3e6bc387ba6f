/**
 * What an operator watches: Prometheus metrics that move, one log line per request that never
 * carries the token or a signature, and CORS answers for browser clients.
 */
import { PassThrough } from "node:stream";
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signature } from "../../../src/auth.js";
import { ContextService, Filesystem, Process, Signal } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";

let agent: TestAgent;
let logs = "";
let dir: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  const logStream = new PassThrough();
  logStream.on("data", (chunk: Buffer) => (logs += chunk.toString()));
  agent = await startTestAgent({ logLevel: "info", logStream });
  dir = await tempDir();
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

/** Parses the Prometheus text format strictly enough that a malformed line fails the test. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (-?(?:[0-9.e+-]+|[Nn][Aa][Nn]|\+Inf|-Inf))$/.exec(line);
    if (!match) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

const scrape = async (): Promise<Map<string, number>> => {
  const res = await fetch(`${agent.url}/metrics`, { headers: AUTH });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parsePrometheus(await res.text());
};

describe("metrics", () => {
  it("needs the token", async () => {
    expect((await fetch(`${agent.url}/metrics`)).status).toBe(401);
  });

  it("parses as Prometheus text and moves when requests are made", async () => {
    const key = 'sandbox_agent_requests_total{route="/sandboxagent.Filesystem/Stat",method="POST",status="200"}';
    const before = (await scrape()).get(key) ?? 0;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${agent.url}/sandboxagent.Filesystem/Stat`, {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify({ path: "/" }),
      });
      expect(res.status).toBe(200);
    }
    const after = await scrape();
    expect(after.get(key)).toBe(before + 3);
    expect(after.get("sandbox_agent_process_resident_memory_bytes")).toBeGreaterThan(0);
    expect([...after.keys()].some((name) => name.startsWith("sandbox_agent_nodejs_eventloop_lag"))).toBe(true);
    expect(
      [...after.keys()].some((name) => name.startsWith('sandbox_agent_request_duration_seconds_bucket{le="0.005",route="/sandboxagent.Filesystem/Stat"')),
    ).toBe(true);
  });
});

describe("metrics from the services", () => {
  it("count file bytes both ways, and report processes, watchers, contexts and kernel starts", async () => {
    const value = async (name: string): Promise<number> => (await scrape()).get(name) ?? 0;
    const up = 'sandbox_agent_file_bytes_total{direction="upload"}';
    const down = 'sandbox_agent_file_bytes_total{direction="download"}';
    const [upBefore, downBefore] = [await value(up), await value(down)];
    const target = `${dir.path}/counted.bin`;
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(1000)]), target);
    expect((await fetch(`${agent.url}/upload`, { method: "POST", headers: AUTH, body: form })).status).toBe(200);
    expect((await (await fetch(`${agent.url}/download${target}`, { headers: AUTH })).arrayBuffer()).byteLength).toBe(1000);
    expect(await value(up)).toBe(upBefore + 1000);
    await eventually(async () => (await value(down)) === downBefore + 1000);

    const processes = client(Process, agent.url);
    const abort = new AbortController();
    const stream = processes.start({ process: { cmd: "sleep", args: ["30"], envs: {} }, tag: "metrics-sleep" }, { headers: AUTH, signal: abort.signal });
    const first = await stream[Symbol.asyncIterator]().next();
    expect(first.value?.event?.event.case).toBe("start");
    expect(await value("sandbox_agent_processes")).toBe(1);
    await processes.sendSignal({ process: { selector: { case: "tag", value: "metrics-sleep" } }, signal: Signal.SIGKILL }, { headers: AUTH });
    abort.abort();
    await eventually(async () => (await value("sandbox_agent_processes")) === 0);

    const fs = client(Filesystem, agent.url);
    const { watcherId } = await fs.createWatcher({ path: dir.path }, { headers: AUTH });
    expect(await value("sandbox_agent_watchers")).toBe(1);
    await fs.removeWatcher({ watcherId }, { headers: AUTH });
    expect(await value("sandbox_agent_watchers")).toBe(0);

    const contexts = client(ContextService, agent.url);
    const startsBefore = await value('sandbox_agent_kernel_events_total{event="start"}');
    const context = await contexts.createContext({ language: "python", cwd: dir.path }, { headers: AUTH });
    expect(await value("sandbox_agent_contexts")).toBe(1);
    expect(await value('sandbox_agent_kernel_events_total{event="start"}')).toBe(startsBefore + 1);
    await contexts.destroyContext({ contextId: context.id }, { headers: AUTH });
    expect(await value("sandbox_agent_contexts")).toBe(0);
  });
});

describe("logs", () => {
  it("log each request with route, status and duration, and never the token or a signature", async () => {
    const file = `${dir.path}/logged.txt`;
    await writeFile(file, "secret payload 7f1c");
    const sig = signature(file, "read", "root", agent.token, Math.floor(Date.now() / 1000) + 60);
    const exp = Math.floor(Date.now() / 1000) + 60;
    const signed = signature(file, "read", "root", agent.token, exp);
    const download = await fetch(`${agent.url}/download${file}?signature=${encodeURIComponent(signed)}&signature_expiration=${exp}&username=root`);
    expect(await download.text()).toBe("secret payload 7f1c");
    const viaToken = await fetch(`${agent.url}/download${file}`, { headers: { ...AUTH, authorization: "Bearer root" } });
    expect(viaToken.status).toBe(200);
    await fetch(`${agent.url}/health`, { headers: { "x-access-token": agent.token } });
    // The line is written when the response closes; wait for it.
    for (let i = 0; i < 100 && !logs.includes('"route":"/download/*"'); i++) await new Promise((r) => setTimeout(r, 20));

    const lines = logs
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const downloadLine = lines.find((line) => line.msg === "request" && line.route === "/download/*");
    expect(downloadLine).toMatchObject({ method: "GET", status: 200 });
    expect(typeof downloadLine?.durationMs).toBe("number");
    expect(typeof downloadLine?.reqId).toBe("string");
    expect(logs).not.toContain(agent.token);
    expect(logs).not.toContain(signed);
    expect(logs).not.toContain(encodeURIComponent(signed));
    expect(logs).not.toContain(sig.slice(3, 20));
    expect(logs).not.toContain("secret payload");
  });

  // Issue 14, item 7: a token a client wrongly put in a URL was logged.
  it("redact every query value but path and username", async () => {
    const file = `${dir.path}/logged-query.txt`;
    await writeFile(file, "x");
    const res = await fetch(`${agent.url}/download${file}?access_token=${agent.token}&path=${encodeURIComponent(file)}&username=root&x=hunter2`, {
      headers: { "x-access-token": agent.token },
    });
    expect(res.status).toBe(200);
    for (let i = 0; i < 100 && !logs.includes("logged-query.txt?"); i++) await new Promise((r) => setTimeout(r, 20));
    const line = logs.split("\n").find((text) => text.includes("logged-query.txt?"));
    expect(line).toBeDefined();
    expect(line).toContain(`path=${encodeURIComponent(file)}`);
    expect(line).toContain("username=root");
    expect(line).toContain("access_token=[redacted]");
    expect(line).toContain("x=[redacted]");
    expect(logs).not.toContain(agent.token);
    expect(logs).not.toContain("hunter2");
  });
});

describe("CORS", () => {
  it("answers preflights without a token and allows the headers Connect, gRPC-web and files use", async () => {
    const res = await fetch(`${agent.url}/sandboxagent.Filesystem/Stat`, {
      method: "OPTIONS",
      headers: {
        origin: "http://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-access-token, connect-protocol-version",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.example");
    const allowed = res.headers.get("access-control-allow-headers") ?? "";
    for (const header of ["x-access-token", "connect-protocol-version", "x-grpc-web", "range", "content-type"]) {
      expect(allowed).toContain(header);
    }
  });

  it("marks real responses for the calling origin and exposes the headers clients read", async () => {
    const res = await fetch(`${agent.url}/sandboxagent.Filesystem/Stat`, {
      method: "POST",
      headers: { ...AUTH, origin: "http://app.example", "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.example");
    expect(res.headers.get("access-control-expose-headers")).toContain("grpc-status");
  });
});
