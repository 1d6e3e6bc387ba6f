/**
 * Issue 16's watch figure: a recursive watch of a tree of 20,000 directories, from CreateWatcher
 * to its answer (the agent answers once every directory is watched), against walking the same
 * tree in-process with readdir: the floor for anything that must find every directory first.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Filesystem } from "../../src/gen/sandboxagent/api_pb.js";
import { row, timeMs, type BenchContext, type Row, type Suite } from "../lib.js";

/** `fanout` directories per level, as deep as it takes to reach `count` (a tree, not a flat list). */
async function makeTree(root: string, count: number, fanout: number): Promise<void> {
  let level = [root];
  let made = 0;
  while (made < count) {
    const next: string[] = [];
    for (const dir of level) {
      for (let i = 0; i < fanout && made < count; i++, made++) next.push(join(dir, `d${i}`));
    }
    for (let i = 0; i < next.length; i += 500) await Promise.all(next.slice(i, i + 500).map((dir) => mkdir(dir)));
    level = next;
  }
}

async function walk(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true });
  const below = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => walk(join(dir, e.name))));
  return below.reduce((sum, n) => sum + n, 1);
}

async function recursiveWatchRows(ctx: BenchContext): Promise<Row[]> {
  const count = ctx.quick ? 2_000 : 20_000;
  const root = join(ctx.workDir, "tree");
  await mkdir(root);
  ctx.log(`making a tree of ${count} directories`);
  await makeTree(root, count, 20);
  const fs = createClient(Filesystem, createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1", useBinaryFormat: false }));
  const headers = { "x-access-token": ctx.token };
  ctx.log("recursive watch");
  let watcherId = "";
  const { result: watchMs, peakMiB } = await ctx.rss.during(() =>
    timeMs(async () => {
      watcherId = (await fs.createWatcher({ path: root, recursive: true }, { headers, timeoutMs: 300_000 })).watcherId;
    }),
  );
  await fs.removeWatcher({ watcherId }, { headers });
  let walked = 0;
  const walkMs = await timeMs(async () => {
    walked = await walk(root);
  });
  if (walked !== count + 1) throw new Error(`walked ${walked} directories of ${count + 1}`);
  await rm(root, { recursive: true });
  return [row(`recursive watch of ${count.toLocaleString("en")} directories ready (vs readdir walk in-process)`, "ms", watchMs, walkMs, peakMiB)];
}

export const watchSuite: Suite = { name: "watch", run: recursiveWatchRows };
