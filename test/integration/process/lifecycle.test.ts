import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Process, Signal } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, eventually, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { collect, emptyCollected, errorAfterFallingBehind, groupMembers, isRunning, procState, record } from "../../helpers/process.js";

let agent: TestAgent;
let c: Client<typeof Process>;
beforeAll(async () => {
  agent = await startTestAgent();
  c = client(Process, agent.url, "connect-h2");
});
afterAll(async () => {
  await agent?.close();
});

const sh = (script: string, tag?: string) => ({ process: { cmd: "/bin/bash", args: ["-c", script], envs: {} }, tag });
const byPid = (pid: number) => ({ selector: { case: "pid" as const, value: pid } });
const byTag = (tag: string) => ({ selector: { case: "tag" as const, value: tag } });

/** Starts a process, reads until `until` holds, then leaves (the process keeps running). */
async function startDetached(request: ReturnType<typeof sh>, until: (stdout: string) => boolean = () => true): Promise<number> {
  const abort = new AbortController();
  const got = await collect(c.start(request, { headers: AUTH, signal: abort.signal }), (so) => {
    if (so.pid !== undefined && until(so.stdout.toString())) abort.abort();
  });
  if (got.pid === undefined) throw new Error(`no start event: ${String(got.error)}`);
  return got.pid;
}

describe("Connect", () => {
  it("replays the output of a process nobody watched, then its end, after it exited", async () => {
    const pid = await startDetached(sh("echo before; sleep 0.2; echo after; exit 4"));
    await eventually(async () => !(await c.list({}, { headers: AUTH })).processes.some((p) => p.pid === pid));
    const got = await collect(c.connect({ process: byPid(pid) }, { headers: AUTH }));
    expect(got.error).toBeUndefined();
    expect(got.kinds[0]).toBe("start");
    expect(got.pid).toBe(pid);
    expect(got.stdout.toString()).toBe("before\nafter\n");
    expect(got.end).toMatchObject({ exitCode: 4, exited: true, status: "exit status 4" });
  });

  it("replays what was missed, then streams live output to the end", async () => {
    const pid = await startDetached(sh("echo one; read x; echo two $x"), (out) => out.includes("one"));
    const stream = c.connect({ process: byPid(pid) }, { headers: AUTH });
    const got = emptyCollected();
    for await (const res of stream) {
      record(got, res.event);
      if (got.stdout.toString() === "one\n" && got.kinds.filter((k) => k === "stdout").length === 1) {
        await c.sendInput({ process: byPid(pid), input: { input: { case: "stdin", value: Buffer.from("live\n") } } }, { headers: AUTH });
      }
    }
    expect(got.stdout.toString()).toBe("one\ntwo live\n");
    expect(got.end?.exitCode).toBe(0);
  });

  it("serves any number of concurrent subscribers the same output", async () => {
    const pid = await startDetached(sh("read go; for i in $(seq 1 500); do echo line $i; done"));
    const subscribers = [0, 1, 2, 3].map(() => {
      let started!: () => void;
      const ready = new Promise<void>((resolve) => (started = resolve));
      const done = collect(c.connect({ process: byPid(pid) }, { headers: AUTH }), (so) => so.pid !== undefined && started());
      return { ready, done };
    });
    await Promise.all(subscribers.map((s) => s.ready));
    await c.sendInput({ process: byPid(pid), input: { input: { case: "stdin", value: Buffer.from("\n") } } }, { headers: AUTH });
    const results = await Promise.all(subscribers.map((s) => s.done));
    const expected = Array.from({ length: 500 }, (_, i) => `line ${i + 1}\n`).join("");
    for (const got of results) {
      expect(got.stdout.toString()).toBe(expected);
      expect(got.end?.exitCode).toBe(0);
    }
  });

  it("cuts off a subscriber that stops reading, while the process and a reading subscriber carry on", async () => {
    const size = 64 * 1024 * 1024;
    const pid = await startDetached(sh(`read go; head -c ${size} /dev/zero`, "flood"));
    // The slow one: takes its start event, then never reads again (HTTP/2 flow control holds the agent back).
    const slow = c.connect({ process: byTag("flood") }, { headers: AUTH })[Symbol.asyncIterator]();
    const first = await slow.next();
    expect(first.value?.event?.event.case).toBe("start");

    let reading!: () => void;
    const ready = new Promise<void>((resolve) => (reading = resolve));
    const normal = collect(client(Process, agent.url, "connect-h2").connect({ process: byTag("flood") }, { headers: AUTH }), (so) => {
      if (so.pid !== undefined) reading();
    });
    await ready;
    await c.sendInput({ process: byPid(pid), input: { input: { case: "stdin", value: Buffer.from("\n") } } }, { headers: AUTH });
    const got = await normal;
    expect(got.error).toBeUndefined();
    expect(got.stdout.length).toBe(size);
    expect(got.end).toMatchObject({ exitCode: 0, status: "exit status 0" });

    // The slow subscriber gets what was already in flight, then learns it was dropped.
    const error = await errorAfterFallingBehind(slow);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((error as ConnectError).rawMessage).toContain("fell behind");
    expect((error as ConnectError).rawMessage).toContain("Connect again");
  });

  it("ends only the subscription when a Connect's own deadline passes: the process runs on", async () => {
    const pid = await startDetached(sh("sleep 30"));
    const got = await collect(c.connect({ process: byPid(pid) }, { headers: AUTH, timeoutMs: 500 }));
    expect(got.kinds[0]).toBe("start");
    expect((got.error as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(await isRunning(pid)).toBe(true);
    await c.sendSignal({ process: byPid(pid), signal: Signal.SIGKILL }, { headers: AUTH });
  });

  it("keeps the end event of an exited process for late callers, by pid and by tag", async () => {
    const got = await collect(c.start(sh("echo bye; exit 2", "late"), { headers: AUTH }));
    const byPidLate = await collect(c.connect({ process: byPid(got.pid!) }, { headers: AUTH }));
    expect(byPidLate.end?.exitCode).toBe(2);
    const byTagLate = await collect(c.connect({ process: byTag("late") }, { headers: AUTH }));
    expect(byTagLate.stdout.toString()).toBe("bye\n");
    expect(byTagLate.end?.exitCode).toBe(2);
  });
});

describe("tags, selectors and List", () => {
  it("keeps tags unique among running processes and indexes them", async () => {
    const web = await startDetached(sh("sleep 30", "web"));
    const worker = await startDetached(sh("sleep 30", "worker"));
    const duplicate = await collect(c.start(sh("sleep 30", "web"), { headers: AUTH }));
    expect((duplicate.error as ConnectError).code).toBe(Code.AlreadyExists);
    expect(duplicate.kinds).toEqual([]);

    const listed = (await c.list({}, { headers: AUTH })).processes;
    const webInfo = listed.find((p) => p.pid === web);
    expect(webInfo?.tag).toBe("web");
    expect(webInfo?.config).toMatchObject({ cmd: "/bin/bash", args: ["-c", "sleep 30"], cwd: "/root" });
    expect(listed.find((p) => p.pid === worker)?.tag).toBe("worker");

    await c.sendSignal({ process: byTag("worker"), signal: Signal.SIGTERM }, { headers: AUTH });
    const ended = await collect(c.connect({ process: byPid(worker) }, { headers: AUTH }));
    expect(ended.end).toMatchObject({ exitCode: -1, status: "signal: terminated" });
    expect(await isRunning(web)).toBe(true);

    await c.sendSignal({ process: byTag("web"), signal: Signal.SIGKILL }, { headers: AUTH });
    await collect(c.connect({ process: byTag("web") }, { headers: AUTH }));
    // Exited, the tag is free again, and the new process owns it.
    const again = await startDetached(sh("sleep 30", "web"));
    const listedAgain = (await c.list({}, { headers: AUTH })).processes;
    expect(listedAgain.filter((p) => p.tag === "web").map((p) => p.pid)).toEqual([again]);
    expect(listedAgain.some((p) => p.pid === web || p.pid === worker)).toBe(false);
    await c.sendSignal({ process: byPid(again), signal: Signal.SIGKILL }, { headers: AUTH });
  });

  it("answers an unknown pid or tag with not_found on every RPC", async () => {
    const calls: [string, (sel: ReturnType<typeof byPid> | ReturnType<typeof byTag>) => Promise<unknown>][] = [
      [
        "connect",
        (sel) =>
          collect(c.connect({ process: sel }, { headers: AUTH })).then((got) => {
            if (got.error) throw got.error;
          }),
      ],
      ["sendSignal", (sel) => c.sendSignal({ process: sel, signal: Signal.SIGKILL }, { headers: AUTH })],
      ["sendInput", (sel) => c.sendInput({ process: sel, input: { input: { case: "stdin", value: Buffer.from("x") } } }, { headers: AUTH })],
      ["update", (sel) => c.update({ process: sel, pty: { size: { cols: 80, rows: 24 } } }, { headers: AUTH })],
      ["closeStdin", (sel) => c.closeStdin({ process: sel }, { headers: AUTH })],
    ];
    for (const [name, call] of calls) {
      for (const [selector, words] of [
        [byPid(4_000_000), "process with pid 4000000 not found"],
        [byTag("no-such-tag"), 'process with tag "no-such-tag" not found'],
      ] as const) {
        const err = await call(selector).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, name).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code, name).toBe(Code.NotFound);
        expect((err as ConnectError).rawMessage, name).toBe(words);
      }
    }
    const empty = await c.sendSignal({ signal: Signal.SIGKILL }, { headers: AUTH }).catch((e: unknown) => e);
    expect((empty as ConnectError).code).toBe(Code.InvalidArgument);
  });

  it("answers signals to an exited process with not_found (the SDK's kill() then says false)", async () => {
    const got = await collect(c.start(sh("true"), { headers: AUTH }));
    const err = await c.sendSignal({ process: byPid(got.pid!), signal: Signal.SIGKILL }, { headers: AUTH }).catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toContain("not found");
  });
});

describe("SendSignal", () => {
  for (const signal of [Signal.SIGKILL, Signal.SIGTERM]) {
    it(`${Signal[signal]} reaches the whole process group: grandchildren die too, nothing is left running`, async () => {
      const pid = await startDetached(sh("sleep 1000 & sleep 1000 & (sleep 1000; true) & echo ready; wait"), (out) => out.includes("ready"));
      const members = await groupMembers(pid);
      expect(members.length).toBeGreaterThanOrEqual(4);
      await c.sendSignal({ process: byPid(pid), signal }, { headers: AUTH });
      const got = await collect(c.connect({ process: byPid(pid) }, { headers: AUTH }));
      expect(got.end?.exitCode).toBe(-1);
      expect(got.end?.status).toBe(signal === Signal.SIGKILL ? "signal: killed" : "signal: terminated");
      await eventually(async () => (await Promise.all(members.map(isRunning))).every((running) => !running));
      // The leader was the agent's own child: reaped, not a zombie.
      expect(await procState(pid)).toBeUndefined();
    });
  }
});

describe("dispose", () => {
  it("kills every running process group when the agent closes, and does not hang", async () => {
    const other = await startTestAgent();
    const oc = client(Process, other.url, "connect-h2");
    const pids: number[] = [];
    for (const pty of [false, true]) {
      const abort = new AbortController();
      await collect(
        oc.start({ ...sh("sleep 1000 & echo ready; wait"), pty: pty ? { size: { cols: 80, rows: 24 } } : undefined }, { headers: AUTH, signal: abort.signal }),
        (so) => {
          if (so.stdout.toString().includes("ready") || so.pty.toString().includes("ready")) abort.abort();
        },
      ).then((got) => pids.push(got.pid!));
    }
    const members = (await Promise.all(pids.map(groupMembers))).flat();
    expect(members.length).toBeGreaterThanOrEqual(4);
    await other.close();
    await eventually(async () => (await Promise.all(members.map(isRunning))).every((running) => !running));
  });
});
