/**
 * A web page on one origin calls the agent on another, in a real headless Chromium: a Stat and a
 * streamed process over connect-web, and a file download (whole and ranged) over fetch. Only a
 * browser enforces CORS, so this is the test that shows a web app can really use the agent.
 *
 * Chromium is Debian's (`scripts/install.sh --test-tools`, which CI runs); playwright-core drives it.
 */
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import type { PageConfig, PageResults } from "./page.js";

const CHROMIUM = "/usr/bin/chromium";
/**
 * As root Chromium needs --no-sandbox; without the background-networking flags it keeps dialling
 * Google's hosts, which this closed network refuses. Playwright gives every launch a fresh
 * temporary profile (its own --user-data-dir), so no state leaks between runs.
 */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const CONTENT = "0123456789 bytes from the agent, seen by a browser\n";
const RANGE: [number, number] = [2, 9];

let agent: TestAgent | undefined;
let pageServer: Server | undefined;
let browser: Browser | undefined;
let dir: { path: string; cleanup: () => Promise<void> } | undefined;

/** Serves the page and its bundled script from an origin of its own (another port). */
async function servePage(config: PageConfig): Promise<string> {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL("./page.ts", import.meta.url))],
    bundle: true,
    write: false,
    format: "iife",
    platform: "browser",
    target: "chrome120",
    logLevel: "silent",
  });
  const script = bundle.outputFiles[0]!.text;
  // "<" escaped so that no value can close the inline script.
  const inline = JSON.stringify(config).replace(/</g, "\\u003c");
  const html = `<!doctype html><meta charset="utf-8"><title>agent from a browser</title>
<script>globalThis.pageConfig = ${inline};</script>
<script src="/app.js"></script>`;
  const server = createServer((req, res) => {
    if (req.url === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
    } else if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  pageServer = server;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** Requests counted by the agent's own metrics, by route and method, all statuses together. */
async function requestCounts(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { headers: AUTH });
  expect(res.status).toBe(200);
  const counts = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = /^sandbox_agent_requests_total\{route="([^"]*)",method="([^"]*)",status="[^"]*"\} (\d+)$/.exec(line);
    if (m) counts.set(`${m[2]} ${m[1]}`, (counts.get(`${m[2]} ${m[1]}`) ?? 0) + Number(m[3]));
  }
  return counts;
}

beforeAll(async () => {
  // Not a skip: CI installs Chromium, so its absence is a broken install, and must fail loudly.
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium with \`sudo bash scripts/install.sh full --test-tools\` (CI does)`);
  }
  agent = await startTestAgent();
  dir = await tempDir("agent-browser-");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (pageServer ? pageServer.close(() => resolve()) : resolve()));
  await agent?.close();
  await dir?.cleanup();
});

describe("a page on another origin", () => {
  it("stats, streams a process and downloads a file through CORS", async () => {
    if (agent === undefined || browser === undefined || dir === undefined) throw new Error("setup failed");
    const file = `${dir.path}/from agent.txt`;
    await writeFile(file, CONTENT);
    const pageUrl = await servePage({ agentUrl: agent.url, token: agent.token, file, range: RANGE });
    expect(new URL(pageUrl).origin).not.toBe(new URL(agent.url).origin);
    const before = await requestCounts(agent.url);

    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
    });
    await page.goto(pageUrl);
    await page
      .waitForFunction(() => "results" in globalThis, undefined, { timeout: 30_000 })
      .catch((err: unknown) => {
        throw new Error(`the page never finished: ${String(err)}\n${problems.join("\n")}`);
      });
    const results = await page.evaluate(() => (globalThis as unknown as { results: PageResults }).results);
    await context.close();

    expect(results.origin).toBe(new URL(pageUrl).origin);

    expect(results.stat, problems.join("\n")).toEqual({
      ok: true,
      value: { name: "from agent.txt", type: "FILE", size: Buffer.byteLength(CONTENT) },
    });

    expect(results.process, problems.join("\n")).toMatchObject({ ok: true });
    if (!results.process.ok) throw new Error(results.process.error);
    const streamed = results.process.value;
    expect(streamed.kinds[0]).toBe("start");
    expect(streamed.kinds.at(-1)).toBe("end");
    expect(streamed.kinds).toContain("data");
    expect(streamed.pid).toBeGreaterThan(0);
    expect(streamed.stdout).toBe("line1\nline2\nline3\n");
    expect(streamed.end).toMatchObject({ exitCode: 0, exited: true });

    expect(results.download, problems.join("\n")).toMatchObject({ ok: true });
    if (!results.download.ok) throw new Error(results.download.error);
    const download = results.download.value;
    expect(download.status).toBe(200);
    expect(download.body).toBe(CONTENT);
    expect(download.contentDisposition).toContain("attachment");
    expect(download.rangeStatus).toBe(206);
    expect(download.rangeBody).toBe(CONTENT.slice(RANGE[0], RANGE[1] + 1));
    expect(download.contentRange).toBe(`bytes ${RANGE[0]}-${RANGE[1]}/${Buffer.byteLength(CONTENT)}`);

    // Browsers send preflights only across origins: seeing them proves CORS was in play, and that
    // the agent answered them (the calls above went through) without a token. Chromium caches a
    // preflight per URL, so three URLs mean at least three preflights; the download's has no
    // route of its own (the route answers GET and HEAD), so only the total names it.
    const after = await requestCounts(agent.url);
    const grew = (key: string): number => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    const preflights = [...after.keys()].filter((key) => key.startsWith("OPTIONS ")).reduce((sum, key) => sum + grew(key), 0);
    expect(grew("OPTIONS /sandboxagent.Filesystem/Stat")).toBeGreaterThanOrEqual(1);
    expect(grew("OPTIONS /sandboxagent.Process/Start")).toBeGreaterThanOrEqual(1);
    expect(preflights).toBeGreaterThanOrEqual(3);
    expect(grew("POST /sandboxagent.Filesystem/Stat")).toBe(1);
    expect(grew("GET /download/*")).toBe(2);
  });
});
