import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ProcessSelectorSchema, StartRequestSchema } from "../../../src/gen/sandboxagent/api_pb.js";
import { SandboxSettings } from "../../../src/sandbox-settings.js";
import { planStart } from "../../../src/services/process/plan.js";
import { ProcessTable } from "../../../src/services/process/table.js";
import { lookupUser } from "../../../src/users.js";
import { eventually } from "../../helpers/agent.js";
import { isRunning } from "../../helpers/process.js";

const root = lookupUser("root")!;
const settings = new SandboxSettings("token", { token: "unused", defaultUser: "root" });
const plan = (script: string, tag?: string) =>
  planStart(create(StartRequestSchema, { process: { cmd: "/bin/bash", args: ["-c", script] }, tag }), root, settings);
const pidSelector = (pid: number) => create(ProcessSelectorSchema, { selector: { case: "pid", value: pid } });
const tagSelector = (tag: string) => create(ProcessSelectorSchema, { selector: { case: "tag", value: tag } });

describe("ProcessTable", () => {
  let table: ProcessTable | undefined;
  afterEach(async () => {
    await table?.dispose();
  });

  it("forgets an exited process after the retention time: then it is not found", async () => {
    table = new ProcessTable({ retentionMs: 300, disposeWaitMs: 2000 });
    const proc = await table.start(await plan("exit 5", "short"));
    await proc.ended;
    expect(table.running()).toEqual([]);
    expect(table.find(pidSelector(proc.pid), { exited: true, caller: root })).toBe(proc);
    expect(table.find(tagSelector("short"), { exited: true, caller: root })).toBe(proc);
    expect(() => table!.find(pidSelector(proc.pid), { exited: false, caller: root })).toThrow(/not found/);
    await eventually(() => {
      try {
        table!.find(pidSelector(proc.pid), { exited: true, caller: root });
        return false;
      } catch (err) {
        return err instanceof ConnectError && err.code === Code.NotFound;
      }
    });
    expect(() => table!.find(tagSelector("short"), { exited: true, caller: root })).toThrow(/not found/);
  });

  it("claims a tag before spawning, so concurrent Starts with one tag cannot both win", async () => {
    table = new ProcessTable({ retentionMs: 1000, disposeWaitMs: 2000 });
    const plans = await Promise.all([plan("sleep 30", "only"), plan("sleep 30", "only")]);
    const results = await Promise.allSettled(plans.map((p) => table!.start(p)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((r) => r.status === "rejected");
    expect(((rejected as PromiseRejectedResult).reason as ConnectError).code).toBe(Code.AlreadyExists);
  });

  it("dispose kills what runs and waits for it", async () => {
    table = new ProcessTable({ retentionMs: 1000, disposeWaitMs: 5000 });
    const procs = await Promise.all([table.start(await plan("sleep 1000")), table.start(await plan("trap '' TERM; sleep 1000"))]);
    await table.dispose();
    for (const proc of procs) {
      expect(proc.running).toBe(false);
      expect(await isRunning(proc.pid)).toBe(false);
    }
    await expect(table.start(await plan("true"))).rejects.toThrow(/shutting down/);
    table = undefined;
  });
});
