/**
 * The script of the browser test's page, bundled by esbuild when the test runs. It calls the agent
 * on another origin the way a web app would, with connect-web and fetch, and leaves what it saw in
 * `globalThis.results` for the test to read. Failures are recorded, not thrown, so that the test
 * reports every part at once with the browser's own error message.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { FileType, Filesystem, Process } from "../../../src/gen/sandboxagent/api_pb.js";

export interface PageConfig {
  readonly agentUrl: string;
  readonly token: string;
  /** A file the page stats and downloads. */
  readonly file: string;
  /** The byte range the page asks for, inclusive. */
  readonly range: readonly [number, number];
}

export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export interface StatSeen {
  readonly name: string;
  readonly type: string;
  readonly size: number;
}

export interface ProcessSeen {
  /** Event kinds in arrival order: "start", "data", "keepalive", "end". */
  readonly kinds: string[];
  readonly pid: number;
  readonly stdout: string;
  readonly end: { readonly exitCode: number; readonly exited: boolean; readonly status: string } | undefined;
}

export interface DownloadSeen {
  readonly status: number;
  readonly body: string;
  readonly contentDisposition: string | null;
  readonly rangeStatus: number;
  readonly rangeBody: string;
  readonly contentRange: string | null;
}

export interface PageResults {
  readonly origin: string;
  readonly stat: Outcome<StatSeen>;
  readonly process: Outcome<ProcessSeen>;
  readonly download: Outcome<DownloadSeen>;
}

/** The page has no DOM typings here (the project compiles for Node); these are the globals it uses. */
interface PageGlobals {
  pageConfig?: PageConfig;
  results?: PageResults;
  location: { readonly origin: string };
}
const page = globalThis as unknown as PageGlobals;

async function outcome<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

async function main(config: PageConfig): Promise<PageResults> {
  const headers = { "x-access-token": config.token };
  // JSON, as the JS SDK sends it: application/json is not a CORS-safelisted type, so every call
  // needs a preflight, like the SDK's calls do.
  const transport = createConnectTransport({ baseUrl: config.agentUrl, useBinaryFormat: false });
  const filesystem = createClient(Filesystem, transport);
  const process = createClient(Process, transport);

  const stat = await outcome(async (): Promise<StatSeen> => {
    const { entry } = await filesystem.stat({ path: config.file }, { headers });
    if (entry === undefined) throw new Error("Stat answered without an entry");
    return { name: entry.name, type: FileType[entry.type] ?? String(entry.type), size: Number(entry.size) };
  });

  const streamed = await outcome(async (): Promise<ProcessSeen> => {
    const kinds: string[] = [];
    const decoder = new TextDecoder();
    let pid = 0;
    let stdout = "";
    let end: ProcessSeen["end"];
    const events = process.start({ process: { cmd: "/bin/sh", args: ["-c", "for i in 1 2 3; do echo line$i; sleep 0.1; done"], envs: {} } }, { headers });
    for await (const { event } of events) {
      if (event === undefined || event.event.case === undefined) continue;
      kinds.push(event.event.case);
      switch (event.event.case) {
        case "start":
          pid = event.event.value.pid;
          break;
        case "data":
          if (event.event.value.output.case === "stdout") stdout += decoder.decode(event.event.value.output.value, { stream: true });
          break;
        case "end": {
          const { exitCode, exited, status } = event.event.value;
          end = { exitCode, exited, status };
          break;
        }
        case "keepalive":
          break;
      }
    }
    return { kinds, pid, stdout: stdout + decoder.decode(), end };
  });

  const download = await outcome(async (): Promise<DownloadSeen> => {
    const url = `${config.agentUrl}/download${config.file.split("/").map(encodeURIComponent).join("/")}`;
    const whole = await fetch(url, { headers });
    const body = await whole.text();
    const [first, last] = config.range;
    const ranged = await fetch(url, { headers: { ...headers, range: `bytes=${first}-${last}` } });
    return {
      status: whole.status,
      body,
      contentDisposition: whole.headers.get("content-disposition"),
      rangeStatus: ranged.status,
      rangeBody: await ranged.text(),
      // Readable from script only because the agent lists it in Access-Control-Expose-Headers.
      contentRange: ranged.headers.get("content-range"),
    };
  });

  return { origin: page.location.origin, stat, process: streamed, download };
}

const config = page.pageConfig;
if (config === undefined) throw new Error("the page was served without its configuration");
void main(config).then((results) => {
  page.results = results;
});
