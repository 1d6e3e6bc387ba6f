/**
 * What every fault test needs: a record of what the agent holds once warmed up, a check that it
 * holds exactly that again after a fault, clients whose connections really close, and a proof
 * that the agent still serves somebody else.
 *
 * The agent runs inside the test process (startTestAgent), so this process's descriptors and
 * children are the agent's, measured from /proc with harness/probe.ts. The test's own client
 * sockets live in the same table: a comparison is only exact once they are closed, which is why
 * plain requests here open a connection per call and Connect clients keep theirs in an HTTP/1.1
 * agent or HTTP/2 session manager that `close()` destroys. Counts are compared exactly, never
 * with a slack.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { request as httpRequest, Agent as HttpAgent } from "node:http";
import { expect } from "vitest";
import { Filesystem, FileType } from "../../src/gen/sandboxagent/api_pb.js";
import { countFds, descendantsOf, fdTargets, zombiesOf } from "../../harness/probe.js";
import { AUTH, eventually, type TestAgent } from "./agent.js";

/** The gauges the services register with `metrics.observe(...)` in src/services/<service>/index.ts. */
export interface Gauges {
  readonly processes: number;
  readonly watchers: number;
  readonly contexts: number;
  /** `sandbox_agent_requests_in_flight` summed over routes, the scrape's own request left out. */
  readonly inFlight: number;
}

export interface Held {
  readonly fds: number;
  /** Every descriptor's target, for the message when a comparison fails. */
  readonly fdTargets: readonly string[];
  readonly descendants: readonly number[];
  readonly zombies: readonly number[];
  readonly gauges: Gauges;
}

/** GET on a connection of its own that closes after the answer (nothing lingers in a pool). */
export function getOnce(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, baseUrl), { agent: false, headers: { ...headers, connection: "close" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** POST on a connection of its own that closes after the answer. */
export function postOnce(baseUrl: string, path: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL(path, baseUrl),
      { method: "POST", agent: false, headers: { ...headers, "content-length": String(body.length), connection: "close" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    // The agent may answer (507, 413) and close before the whole body is written.
    req.on("error", reject);
    req.end(body);
  });
}

export async function gaugesOf(agent: TestAgent): Promise<Gauges> {
  const { status, body } = await getOnce(agent.url, "/metrics", AUTH);
  if (status !== 200) throw new Error(`/metrics answered ${status}: ${body.slice(0, 200)}`);
  const value = (name: string): number => {
    const match = new RegExp(`^sandbox_agent_${name} ([0-9.eE+-]+)$`, "m").exec(body);
    return match ? Number(match[1]) : Number.NaN;
  };
  let inFlight = 0;
  for (const match of body.matchAll(/^sandbox_agent_requests_in_flight\{route="([^"]*)"\} ([0-9.eE+-]+)$/gm)) {
    if (match[1] !== "/metrics") inFlight += Number(match[2]);
  }
  return { processes: value("processes"), watchers: value("watchers"), contexts: value("contexts"), inFlight };
}

export async function heldBy(agent: TestAgent): Promise<Held> {
  // Descriptors first: the scrape below opens a socket of its own, closed by the next reading.
  const targets = await fdTargets(process.pid);
  const fds = await countFds(process.pid);
  const descendants = await descendantsOf(process.pid);
  const zombies = await zombiesOf(process.pid);
  const gauges = await gaugesOf(agent);
  return { fds, fdTargets: targets, descendants, zombies, gauges };
}

/** `eventually` for a check that returns a value once ready and undefined until then. */
export async function eventuallyValue<T>(check: () => Promise<T | undefined>, timeoutMs?: number, intervalMs?: number): Promise<T> {
  const found = await eventually(check, timeoutMs, intervalMs);
  if (found === undefined) throw new Error("eventually() returned without a value");
  return found;
}

function sameHolding(a: Held, b: Held): boolean {
  return (
    a.fds === b.fds &&
    a.zombies.length === 0 &&
    b.zombies.length === 0 &&
    JSON.stringify(a.descendants) === JSON.stringify(b.descendants) &&
    JSON.stringify(a.gauges) === JSON.stringify(b.gauges)
  );
}

/**
 * The agent's holdings once nothing is going on: two readings in a row that agree (sockets of the
 * warm-up still closing, a timer's descriptor, settle first).
 */
export async function baselineOf(agent: TestAgent): Promise<Held> {
  let previous = await heldBy(agent);
  return eventuallyValue(async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = await heldBy(agent);
    const settled = sameHolding(previous, now) && now.gauges.inFlight === 0 ? now : undefined;
    previous = now;
    return settled;
  }, 20_000);
}

/** Multiset difference of descriptor targets, for a failure message that names what leaked. */
function targetDiff(before: readonly string[], after: readonly string[]): { gained: string[]; lost: string[] } {
  const count = new Map<string, number>();
  for (const t of before) count.set(t, (count.get(t) ?? 0) + 1);
  const gained: string[] = [];
  for (const t of after) {
    const n = count.get(t) ?? 0;
    if (n > 0) count.set(t, n - 1);
    else gained.push(t);
  }
  const lost = [...count].flatMap(([t, n]) => Array<string>(n).fill(t));
  return { gained, lost };
}

/**
 * Waits until the agent holds exactly what it held at `baseline`: descriptors, live children,
 * no zombie, and the processes/watchers/contexts/in-flight gauges. Fails with what differs.
 */
export async function expectBackToBaseline(agent: TestAgent, baseline: Held, timeoutMs = 20_000): Promise<void> {
  let last: Held | undefined;
  try {
    await eventually(
      async () => {
        last = await heldBy(agent);
        return sameHolding(baseline, last);
      },
      timeoutMs,
      100,
    );
  } catch {
    const now = last ?? (await heldBy(agent));
    const { gained, lost } = targetDiff(baseline.fdTargets, now.fdTargets);
    expect(
      {
        fds: now.fds,
        descendants: now.descendants,
        zombies: now.zombies,
        gauges: now.gauges,
        fdsGained: gained,
        fdsLost: lost,
      },
      "the agent did not return to what it held before the fault",
    ).toEqual({
      fds: baseline.fds,
      descendants: baseline.descendants,
      zombies: [],
      gauges: baseline.gauges,
      fdsGained: [],
      fdsLost: [],
    });
  }
}

export type Transport = "h1" | "h2" | "grpc";

/** Clients whose connections close for real when `close()` is called. */
export interface Clients {
  of<S extends DescService>(service: S): Client<S>;
  close(): void;
}

/**
 * Connect clients over one transport. HTTP/1.1 uses its own agent (destroyed by `close`, which
 * cuts any call still running); HTTP/2 and gRPC share one session manager per set.
 */
export function clientsOver(baseUrl: string, transport: Transport): Clients {
  if (transport === "h1") {
    const agent = new HttpAgent({ keepAlive: true });
    const t = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, nodeOptions: { agent } });
    return { of: (service) => createClient(service, t), close: () => agent.destroy() };
  }
  const sessionManager = new Http2SessionManager(baseUrl);
  const t =
    transport === "grpc"
      ? createGrpcTransport({ baseUrl, sessionManager })
      : createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, sessionManager });
  return { of: (service) => createClient(service, t), close: () => sessionManager.abort() };
}

/** Runs `use` with a fresh set of clients and closes them afterwards, whatever happens. */
export async function withClients<T>(baseUrl: string, transport: Transport, use: (clients: Clients) => Promise<T>): Promise<T> {
  const clients = clientsOver(baseUrl, transport);
  try {
    return await use(clients);
  } finally {
    clients.close();
  }
}

/**
 * Another client is served: /health answers, and a Filesystem/Stat over a connection of its own
 * returns the entry. Call it while a fault is going on and after it.
 */
export async function expectServesOthers(agent: TestAgent, statPath = "/tmp"): Promise<void> {
  const health = await getOnce(agent.url, "/health");
  expect(health).toEqual({ status: 200, body: "OK" });
  await withClients(agent.url, "h2", async (clients) => {
    const { entry } = await clients.of(Filesystem).stat({ path: statPath }, { headers: AUTH });
    expect(entry?.path).toBe(statPath);
    expect(entry?.type).toBe(FileType.DIRECTORY);
  });
}

/** `expectServesOthers` started now, while a fault happens, to be awaited later. */
export function servesOthersMeanwhile(agent: TestAgent): Promise<void> {
  const check = expectServesOthers(agent);
  check.catch(() => undefined); // its failure is reported where it is awaited, not as unhandled
  return check;
}

export { isRunning, procState, groupMembers } from "./process.js";
