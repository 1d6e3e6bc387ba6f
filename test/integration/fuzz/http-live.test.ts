import { lookupUser } from "../../../src/users.js";
/**
 * Hostile plain-HTTP requests against one live agent, one family at a time (harness/arbitraries/
 * http.ts): paths, ranges, multipart bodies, signed URLs, auth headers and raw bytes on the
 * socket. Every answer must be an answer — a success or a client error, never a 5xx, a server-only
 * Connect code or silence; a request with no credential must never succeed, and a plain request
 * for an existing file must get it (or a 416). Afterwards the agent still answers /health, logged
 * no errors, and left no staging files behind, neither in the scratch directory nor in the
 * caller's home (where an upload with no usable target is staged).
 *
 * Root's home is a fresh directory for this file (isolateRootHome), so nothing a request might
 * still resolve there can touch the machine's own.
 */
import fc from "fast-check";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EXPECT_HEADER, httpFamilies, prepareHttpScratch, type HttpFamily } from "../../../harness/arbitraries/http.js";
import { describeOutcome, describeSpec, faultOf, send, type Outcome, type RequestSpec } from "../../../harness/request.js";
import { eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";

vi.mock(import("../../../src/users.js"), async (real) => (await import("../../helpers/users.js")).withIsolatedRootHome(await real()));
const rootHome = (): string => lookupUser("root")!.home;

/** Per family: enough to reach every branch of the generators, few enough for ~60 s in all. */
const RUNS = 400;
/** A local request unanswered this long is a hang, even on a loaded machine. */
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * Shrinking a hang costs a timeout per step: stop in time to report the smallest request found so
 * far rather than let the test time out. (A run cut short without a failure still passes.)
 */
const FAMILY_TIME_LIMIT_MS = 120_000;
const FAMILIES: readonly HttpFamily[] = ["path", "range", "multipart", "signed", "auth", "raw"];

/** `.<name>.upload-<12 hex>`: the staging files of src/http/staging.ts. */
const STAGING = /^\..*\.upload-[0-9a-f]{12}$/s;

let agent: TestAgent;
let scratch: { path: string; cleanup: () => Promise<void> };
const errorLogs: string[] = [];

beforeAll(async () => {
  scratch = await tempDir("agent-http-fuzz-");
  await prepareHttpScratch(scratch.path);
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (/"level":(50|60)/.test(line)) errorLogs.push(line);
      done();
    },
  });
  agent = await startTestAgent({ logLevel: "error", logStream });
});

afterAll(async () => {
  await agent?.close();
  await scratch?.cleanup();
});

/** Every entry under `dir`, symlinks not followed. */
async function walk(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    found.push(path);
    if ((await lstat(path)).isDirectory()) found.push(...(await walk(path)));
  }
  return found;
}

async function stagingLeftovers(): Promise<string[]> {
  const all = [...(await walk(scratch.path)), ...(await walk(rootHome()))];
  return all.filter((path) => STAGING.test(path.slice(path.lastIndexOf("/") + 1)));
}

const expectation = (spec: RequestSpec): string | undefined => spec.headers.find(([name]) => name === EXPECT_HEADER)?.[1];

/** What the generator said the answer must be, when it could tell (see EXPECT_HEADER). */
function checkExpectation(spec: RequestSpec, outcome: Outcome): void {
  const expected = expectation(spec);
  if (expected === "unauthorised") expect(outcome.status >= 200 && outcome.status < 400, `${describeSpec(spec)} -> ${describeOutcome(outcome)}`).toBe(false);
  if (expected === "served") expect([200, 206, 416, 431], `${describeSpec(spec)} -> ${describeOutcome(outcome)}`).toContain(outcome.status);
}

describe("plain HTTP under hostile requests", () => {
  for (const family of FAMILIES) {
    it(`${family}: every request gets a success or a client error, never a fault`, async () => {
      // Earlier families may have uploaded over the fixtures: Range wants its file back.
      await prepareHttpScratch(scratch.path);
      const requests = httpFamilies({ token: agent.token, scratch: scratch.path })[family];
      await fc.assert(
        fc.asyncProperty(requests, async (spec) => {
          const outcome = await send(agent.url, spec, { timeoutMs: REQUEST_TIMEOUT_MS });
          expect(faultOf(spec, outcome), `${describeSpec(spec)} -> ${describeOutcome(outcome)}`).toBeUndefined();
          checkExpectation(spec, outcome);
        }),
        { numRuns: RUNS, interruptAfterTimeLimit: FAMILY_TIME_LIMIT_MS },
      );
      // Cleanup after a client that went away runs when the agent notices; give it that moment.
      await eventually(async () => (await stagingLeftovers()).length === 0, 15_000).catch(() => undefined);
      expect(await stagingLeftovers()).toEqual([]);
    }, 180_000);
  }

  it("still answers /health, logged no errors, and wrote nothing into the caller's home", async () => {
    const health = await send(agent.url, { family: "health", transport: "http1", method: "GET", target: "/health", headers: [] });
    expect(health.status).toBe(200);
    expect(health.excerpt).toBe("OK");
    expect(errorLogs).toEqual([]);
    expect(await walk(rootHome())).toEqual([]);
  });
});
