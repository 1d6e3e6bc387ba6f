/**
 * `npm run bench [-- --quick] [-- --only files,process]`: starts the built agent, runs every suite,
 * prints a table (metric, agent, baseline, ratio) and writes the rows to bench/out/latest.json.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RssSampler, rssMiB, startAgentProcess, type Row, type Suite } from "./lib.js";
import { suites } from "./suites/index.js";

function format(value: number | null, digits = 2): string {
  if (value === null || Number.isNaN(value)) return "-";
  if (Math.abs(value) >= 1000) return value.toFixed(0);
  return value.toFixed(digits);
}

function printTable(rows: readonly Row[]): void {
  const header = ["metric", "unit", "agent", "baseline", "ratio", "peak RSS MiB"];
  const body = rows.map((r) => [
    r.metric,
    r.unit,
    format(r.agent),
    format(r.baseline),
    r.ratio === null ? "-" : `${format(r.ratio)}x`,
    format(r.peakRssMiB ?? null, 0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const cells of body) console.log(line(cells));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const onlyIndex = args.indexOf("--only");
  const only = onlyIndex >= 0 ? new Set((args[onlyIndex + 1] ?? "").split(",")) : undefined;
  const selected: Suite[] = suites.filter((suite) => only === undefined || only.has(suite.name));

  const token = randomBytes(16).toString("hex");
  const agent = await startAgentProcess(token);
  const workDir = await mkdtemp(join(tmpdir(), "agent-bench-"));
  // Once its start-up work (the kernel pool's first kernel) has settled.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const startRssMiB = await rssMiB(agent.pid);
  const rows: Row[] = [];
  const rss = new RssSampler(agent.pid);
  const started = Date.now();
  try {
    for (const suite of selected) {
      console.error(`bench: ${suite.name}…`);
      const { result: suiteRows, peakMiB } = await rss.during(() =>
        suite.run({
          url: agent.url,
          token,
          pid: agent.pid,
          startRssMiB,
          workDir,
          quick,
          log: (message) => console.error(`  ${suite.name}: ${message}`),
          rss,
        }),
      );
      rows.push(...suiteRows.map((r) => (r.peakRssMiB === undefined ? { ...r, peakRssMiB: peakMiB } : r)));
    }
  } finally {
    rss.stop();
    console.error(`bench: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    await agent.stop();
    await rm(workDir, { recursive: true, force: true });
  }
  printTable(rows);
  const outDir = new URL("./out/", import.meta.url);
  await mkdir(outDir, { recursive: true });
  await writeFile(new URL("latest.json", outDir), `${JSON.stringify(rows, null, 2)}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
