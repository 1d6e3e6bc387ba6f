/**
 * What the agent holds at one moment, from outside (/proc) and from its own /metrics gauges: the
 * figures the leak check compares between the end of the warm-up and the end of the run.
 */
import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { metricValue, resourcesOf, zombiesOf } from "../../harness/probe.js";

/** The gauges the services register with `metrics.observe(...)` (src/services/*\/index.ts). */
export const GAUGES = ["processes", "watchers", "contexts"] as const;
export type GaugeName = (typeof GAUGES)[number];
export type Gauges = Readonly<Record<GaugeName, number>>;

export interface Snapshot {
  readonly fds: number;
  readonly rssBytes: number;
  /** Live descendants, each with its command line (to tell kernels from leftovers). */
  readonly descendants: ReadonlyMap<number, string>;
  readonly zombies: readonly number[];
  readonly gauges: Gauges;
  /** V8 heap in use and memory outside it (Buffers, native addons) as the agent reports them: for
   *  telling a JS leak from a native one; informative only, both saw-tooth with every GC. */
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
}

export async function snapshotOf(pid: number, baseUrl: string, token: string): Promise<Snapshot> {
  const [resources, zombies, metrics] = await Promise.all([resourcesOf(pid), zombiesOf(pid), scrape(baseUrl, token)]);
  const descendants = new Map<number, string>();
  for (const child of resources.descendants) descendants.set(child, await commandLine(child));
  const gauge = (name: string): number => metricValue(metrics, `sandbox_agent_${name}`);
  return {
    fds: resources.fds,
    rssBytes: resources.rssBytes,
    descendants,
    zombies,
    gauges: { processes: gauge("processes"), watchers: gauge("watchers"), contexts: gauge("contexts") },
    heapUsedBytes: gauge("nodejs_heap_size_used_bytes"),
    heapTotalBytes: gauge("nodejs_heap_size_total_bytes"),
    externalBytes: gauge("nodejs_external_memory_bytes"),
  };
}

/**
 * /metrics over a connection of its own that closes after the answer: a keep-alive socket left in
 * a client pool would be one more descriptor in the agent, there at one snapshot and not the next.
 */
export function scrape(baseUrl: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(new URL("/metrics", baseUrl), { agent: false, headers: { "x-access-token": token, connection: "close" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`/metrics answered ${res.statusCode}: ${body.slice(0, 200)}`));
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

async function commandLine(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean).join(" ");
  } catch {
    return "(exited)";
  }
}

export const isKernel = (commandLine: string): boolean => /ipykernel/.test(commandLine);

const mb = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(0)} MB`;

/** "fds 50, rss 140 MB (heap 58/70 MB, external 3 MB)" */
export function memoryText(s: Snapshot): string {
  return `fds ${s.fds}, rss ${mb(s.rssBytes)} (heap ${mb(s.heapUsedBytes)}/${mb(s.heapTotalBytes)}, external ${mb(s.externalBytes)})`;
}
