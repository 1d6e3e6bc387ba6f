/**
 * Issue 2's figures: 1 GiB download and upload against `cp`, Stat round trips over HTTP/1.1 and
 * h2c against a bare node:http(2) server in its own process doing the same stat, ListDir of 10,000
 * entries against readdir+lstat in-process, and the agent's idle RSS against a bare Node process.
 * Issue 14's: the same transfers, Stat and ListDir as an unprivileged user (`nobody`, whose
 * operations run on the file workers with its own credentials) against the same as root.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, lstat, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Filesystem } from "../../src/gen/sandboxagent/api_pb.js";
import { connectFloorServer, GiB, MiB, percentile, row, rssMiB, sample, serverProcess, timeCommand, type BenchContext, type Row, type Suite } from "../lib.js";

async function makeFile(path: string, bytes: number): Promise<void> {
  await pipeline(createReadStream("/dev/urandom", { end: bytes - 1 }), createWriteStream(path));
}

/**
 * The transfers use curl as the client, as a user would: a Node client in this process would
 * measure itself (it tops out well below what the agent serves) rather than the agent.
 */
function download(ctx: BenchContext, path: string, dest: string, user = "root"): Promise<number> {
  return timeCommand("curl", ["-sSf", "-o", dest, "-H", `x-access-token: ${ctx.token}`, "-H", `x-user: ${user}`, `${ctx.url}/download${path}`]);
}

/** The SDK's shape: the file part (its filename the target path), then the path field. */
function upload(ctx: BenchContext, source: string, target: string, user = "root"): Promise<number> {
  return timeCommand("curl", [
    "-sSf",
    "-o",
    "/dev/null",
    "-H",
    `x-access-token: ${ctx.token}`,
    "-H",
    `x-user: ${user}`,
    "-F",
    `file=@${source};filename=${target}`,
    "-F",
    `path=${target}`,
    `${ctx.url}/upload`,
  ]);
}

/** The user whose file operations the non-root rows measure; it exists on every Debian system. */
const UNPRIVILEGED = "nobody";

/** A directory in the run's scratch space that the unprivileged user may read and write. */
async function unprivilegedDir(ctx: BenchContext, name: string): Promise<string> {
  await chmod(ctx.workDir, 0o711);
  const dir = join(ctx.workDir, name);
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  return dir;
}

/**
 * The floor for a file transfer over HTTP in Node: its own process (as the agent is), one route.
 * GET streams the named file with 1 MiB reads; POST writes the raw request body (no multipart) to
 * the named file. Prints its port on stdout.
 */
const BARE_FILE_SERVER = `
const http = require("node:http");
const fs = require("node:fs");
const server = http.createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  if (req.method === "GET") {
    fs.createReadStream(path, { highWaterMark: 1 << 20 }).pipe(res);
  } else {
    req.pipe(fs.createWriteStream(path)).on("finish", () => res.end("{}"));
  }
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

async function transferRows(ctx: BenchContext): Promise<Row[]> {
  const size = ctx.quick ? 64 * MiB : GiB;
  const label = ctx.quick ? "64 MiB" : "1 GiB";
  const source = join(ctx.workDir, "big.bin");
  ctx.log(`writing a ${label} file`);
  await makeFile(source, size);
  const mbps = (ms: number): number => size / MiB / (ms / 1000);
  const copy = join(ctx.workDir, "copy.bin");
  const checked = async (ms: number, path = copy): Promise<number> => {
    if ((await stat(path)).size !== size) throw new Error(`${path}: size mismatch`);
    await rm(path);
    return ms;
  };
  // Every row writes a GiB: without a sync first, a row would also pay for writing back what the
  // row before left dirty (measured: a second upload in a row at 250-290 MB/s, the first at 420-620).
  const settled = async <T>(work: () => Promise<T>): Promise<T> => {
    await timeCommand("sync", []);
    return work();
  };
  // Warm the page cache identically for everyone, then measure each once (they are long).
  await timeCommand("cp", [source, copy]);
  await rm(copy);
  const cpMs = await settled(async () => checked(await timeCommand("cp", [source, copy])));

  ctx.log("bare node server: download and upload");
  const bare = await serverProcess(["-e", BARE_FILE_SERVER]);
  let bareDownMs: number;
  let bareUpMs: number;
  try {
    bareDownMs = await settled(async () => checked(await timeCommand("curl", ["-sSf", "-o", copy, `${bare.url}${source}`])));
    bareUpMs = await settled(async () => checked(await timeCommand("curl", ["-sSf", "-o", "/dev/null", "-X", "POST", "-T", source, `${bare.url}${copy}`])));
  } finally {
    bare.close();
  }

  ctx.log("download");
  const down = await settled(() => ctx.rss.during(async () => checked(await download(ctx, source, copy))));
  ctx.log("upload");
  const up = await settled(() => ctx.rss.during(async () => checked(await upload(ctx, source, copy))));

  ctx.log(`download and upload as ${UNPRIVILEGED}`);
  const shared = await unprivilegedDir(ctx, "unprivileged-transfers");
  await chmod(source, 0o644);
  const userCopy = join(shared, "copy.bin");
  const userDown = await settled(() => ctx.rss.during(async () => checked(await download(ctx, source, userCopy, UNPRIVILEGED), userCopy)));
  const userUp = await settled(() => ctx.rss.during(async () => checked(await upload(ctx, source, userCopy, UNPRIVILEGED), userCopy)));
  await rm(shared, { recursive: true });
  await rm(source);
  return [
    row(`download ${label} (vs bare node server, 1 MiB reads)`, "MiB/s", mbps(down.result), mbps(bareDownMs), down.peakMiB),
    row(`download ${label} (vs cp)`, "MiB/s", mbps(down.result), mbps(cpMs), down.peakMiB),
    row(`upload ${label} multipart (vs bare node server, raw body to file)`, "MiB/s", mbps(up.result), mbps(bareUpMs), up.peakMiB),
    row(`upload ${label} multipart (vs cp)`, "MiB/s", mbps(up.result), mbps(cpMs), up.peakMiB),
    row(`download ${label} as ${UNPRIVILEGED} (vs as root)`, "MiB/s", mbps(userDown.result), mbps(down.result), userDown.peakMiB),
    row(`upload ${label} as ${UNPRIVILEGED} (vs as root)`, "MiB/s", mbps(userUp.result), mbps(up.result), userUp.peakMiB),
  ];
}

/**
 * The floor for an RPC round trip: its own process (as the agent is), answering a stat of the
 * posted path in the JSON the client expects, over HTTP/1.1 or h2c (argv). Prints its port.
 */
const BARE_STAT_SERVER = `
const http = require("node:http");
const http2 = require("node:http2");
const { lstat } = require("node:fs/promises");
const handler = (req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let path = "/";
    try {
      path = JSON.parse(Buffer.concat(chunks).toString() || "{}").path ?? "/";
    } catch {
      // fall through with "/": the baseline must keep answering
    }
    lstat(path).then(
      (st) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ entry: { path, size: st.size, mode: st.mode, modifiedTime: st.mtime.toISOString() } }));
      },
      () => {
        res.writeHead(404);
        res.end();
      },
    );
  });
};
const server = process.argv[1] === "h1" ? http.createServer(handler) : http2.createServer(handler);
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

async function statRows(ctx: BenchContext): Promise<Row[]> {
  const count = ctx.quick ? 300 : 3000;
  const rows: Row[] = [];
  for (const httpVersion of ["1.1", "2"] as const) {
    const label = httpVersion === "1.1" ? "HTTP/1.1" : "h2c";
    ctx.log(`Stat over ${label}`);
    // JSON on both sides, as the JS SDK sends it.
    const agentClient = createClient(Filesystem, createConnectTransport({ baseUrl: ctx.url, httpVersion, useBinaryFormat: false }));
    const headers = { "x-access-token": ctx.token };
    const { result: agentSamples, peakMiB } = await ctx.rss.during(() => sample(count, () => agentClient.stat({ path: ctx.workDir }, { headers })));
    const bare = await serverProcess(["-e", BARE_STAT_SERVER, httpVersion === "1.1" ? "h1" : "h2c"]);
    const bareClient = createClient(Filesystem, createConnectTransport({ baseUrl: bare.url, httpVersion, useBinaryFormat: false }));
    const bareSamples = await sample(count, () => bareClient.stat({ path: ctx.workDir }));
    bare.close();
    const floor = await connectFloorServer(httpVersion);
    const floorClient = createClient(Filesystem, createConnectTransport({ baseUrl: floor.url, httpVersion, useBinaryFormat: false }));
    const floorSamples = await sample(count, () => floorClient.stat({ path: ctx.workDir }));
    floor.close();
    rows.push(row(`Stat round trip ${label} p50 (vs bare node server)`, "ms", percentile(agentSamples, 50), percentile(bareSamples, 50), peakMiB));
    rows.push(row(`Stat round trip ${label} p99 (vs bare node server)`, "ms", percentile(agentSamples, 99), percentile(bareSamples, 99), peakMiB));
    rows.push(
      row(
        `Stat round trip ${label} p50, fastify + connect-fastify alone (vs bare node server)`,
        "ms",
        percentile(floorSamples, 50),
        percentile(bareSamples, 50),
      ),
    );
    rows.push(
      row(`Stat round trip ${label} p50 (vs fastify + connect-fastify alone)`, "ms", percentile(agentSamples, 50), percentile(floorSamples, 50), peakMiB),
    );
    if (httpVersion === "1.1") {
      const asUser = { "x-access-token": ctx.token, "x-user": UNPRIVILEGED };
      await chmod(ctx.workDir, 0o711);
      const userSamples = await sample(count, () => agentClient.stat({ path: ctx.workDir }, { headers: asUser }));
      rows.push(row(`Stat round trip ${label} p50 as ${UNPRIVILEGED} (vs as root)`, "ms", percentile(userSamples, 50), percentile(agentSamples, 50)));
    }
  }
  return rows;
}

/**
 * ListDir is timed twice. As curl sends it (JSON over HTTP/1.1, the body read whole but not
 * parsed), the round trip is the agent's work; through connect-node, the client's own decoding of
 * 10,000 JSON entries into messages (~50 ms with protobuf-es) is in the figure too.
 */
async function listDirRows(ctx: BenchContext): Promise<Row[]> {
  ctx.log("ListDir");
  const dir = await unprivilegedDir(ctx, "many");
  const entries = 10_000;
  for (let i = 0; i < entries; i += 500) {
    await Promise.all(Array.from({ length: 500 }, (_, j) => writeFile(join(dir, `f${i + j}.txt`), "x")));
  }
  const fs = createClient(Filesystem, createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1", useBinaryFormat: false }));
  const headers = { "x-access-token": ctx.token };
  const asUser = { "x-access-token": ctx.token, "x-user": UNPRIVILEGED };
  const runs = ctx.quick ? 3 : 10;
  const asCurl = async (extra: Record<string, string>): Promise<Buffer> => {
    const res = await fetch(`${ctx.url}/sandboxagent.Filesystem/ListDir`, {
      method: "POST",
      headers: { "content-type": "application/json", ...extra },
      body: JSON.stringify({ path: dir, depth: 1 }),
    });
    if (!res.ok) throw new Error(`ListDir answered ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  };
  for (const extra of [headers, asUser]) {
    const listed = (JSON.parse((await asCurl(extra)).toString()) as { entries: unknown[] }).entries.length;
    if (listed !== entries) throw new Error(`ListDir returned ${listed} entries`);
  }
  const { result: agentSamples, peakMiB } = await ctx.rss.during(() => sample(runs, () => asCurl(headers), 1));
  const clientSamples = await sample(
    runs,
    async () => {
      const res = await fs.listDir({ path: dir, depth: 1 }, { headers });
      if (res.entries.length !== entries) throw new Error(`ListDir returned ${res.entries.length} entries`);
    },
    1,
  );
  const baseSamples = await sample(
    runs,
    async () => {
      const names = await readdir(dir);
      await Promise.all(names.map((name) => lstat(join(dir, name))));
    },
    1,
  );
  const userSamples = await sample(runs, () => asCurl(asUser), 1);
  await rm(dir, { recursive: true });
  return [
    row(
      "ListDir 10,000 entries p50, JSON as curl sends it (vs readdir+lstat in-process)",
      "ms",
      percentile(agentSamples, 50),
      percentile(baseSamples, 50),
      peakMiB,
    ),
    row(
      "ListDir 10,000 entries p50, connect-node client decoding them (vs readdir+lstat in-process)",
      "ms",
      percentile(clientSamples, 50),
      percentile(baseSamples, 50),
    ),
    row(`ListDir 10,000 entries p50 as ${UNPRIVILEGED} (vs as root)`, "ms", percentile(userSamples, 50), percentile(agentSamples, 50)),
  ];
}

async function idleRss(ctx: BenchContext): Promise<Row> {
  const bare = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const bareRss = await rssMiB(bare.pid!);
  bare.kill();
  const idle = await rssMiB(ctx.pid);
  return row("agent RSS when idle (vs bare node process)", "MiB", idle, bareRss, idle);
}

export const filesSuite: Suite = {
  name: "files",
  run: async (ctx) => {
    // Idle first, before any request has grown the heap.
    const idle = await idleRss(ctx);
    return [idle, ...(await transferRows(ctx)), ...(await statRows(ctx)), ...(await listDirRows(ctx))];
  },
};
