/**
 * Fault: a process streaming output is SIGKILLed from outside the agent (the OOM killer, a user's
 * `kill -9` in another shell), not through SendSignal. Its Start stream must end with the end
 * event naming the signal, nothing may hang, the child must be reaped (no zombie), and the
 * agent's descriptors (pipes or terminal) and its `processes` gauge must go back to where they
 * were. test/integration/process covers SendSignal and the end event's wording; this file covers the kill
 * that the agent did not ask for, over each transport and for pipes and terminals.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Process, type StartRequestSchema } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, eventually, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { collect, type Collected } from "../../helpers/process.js";
import {
  baselineOf,
  expectBackToBaseline,
  expectServesOthers,
  groupMembers,
  isRunning,
  procState,
  servesOthersMeanwhile,
  withClients,
  type Held,
  type Transport,
} from "../../helpers/faults.js";

type StartInit = MessageInitShape<typeof StartRequestSchema>;

const MiB = 1024 * 1024;
/** Far more than the test lets through before the kill: the stream cannot end on its own. */
const FLOOD = String(1024 * MiB);
/** Output seen before the kill, so the child is killed while its output is in flight. */
const KILL_AFTER_BYTES = 2 * MiB;

let agent: TestAgent;
let baseline: Held;

beforeAll(async () => {
  agent = await startTestAgent({ kernelPoolSize: 0 });
  // Warm-up: the first spawn of each kind creates what the agent keeps for good (libuv's signal
  // pipe for SIGCHLD, node-pty's loaded addon), which must not count as a leak below.
  for (const transport of ["h1", "h2", "grpc"] as const) {
    await withClients(agent.url, transport, async (clients) => {
      const proc = clients.of(Process);
      await collect(proc.start({ process: { cmd: "true", args: [], envs: {} } }, { headers: AUTH }));
      await collect(proc.start({ process: { cmd: "true", args: [], envs: {} }, pty: { size: { cols: 80, rows: 24 } } }, { headers: AUTH }));
    });
  }
  await expectServesOthers(agent);
  baseline = await baselineOf(agent);
});

afterAll(async () => {
  await agent?.close();
});

const outputBytes = (got: Collected): number => got.bytes.stdout + got.bytes.pty;

/**
 * Streams `request`, SIGKILLs `victim(pid)` from outside once output flows, and proves on the way
 * that the agent serves another client while the fault happens.
 */
async function killMidStream(transport: Transport, request: StartInit, victim: (pid: number) => number): Promise<Collected> {
  return withClients(agent.url, transport, async (clients) => {
    let killed = false;
    let meanwhile: Promise<void> | undefined;
    const got = await collect(clients.of(Process).start(request, { headers: AUTH }), (so) => {
      if (!killed && so.pid !== undefined && outputBytes(so) >= KILL_AFTER_BYTES) {
        killed = true;
        process.kill(victim(so.pid), "SIGKILL");
        meanwhile = servesOthersMeanwhile(agent);
      }
    });
    expect(killed, `the stream ended before ${KILL_AFTER_BYTES} bytes arrived: ${String(got.error)}`).toBe(true);
    await meanwhile;
    return got;
  });
}

function expectKilledEnd(got: Collected): void {
  expect(got.error).toBeUndefined();
  expect(got.kinds[0]).toBe("start");
  expect(got.kinds.at(-1)).toBe("end");
  expect(got.end).toMatchObject({ exitCode: -1, exited: false, status: "signal: killed" });
  // It really was cut short: the child had far more to write.
  expect(outputBytes(got)).toBeLessThan(Number(FLOOD));
}

const flood = (pty: boolean): StartInit => ({
  process: { cmd: "head", args: ["-c", FLOOD, "/dev/zero"], envs: {} },
  ...(pty ? { pty: { size: { cols: 80, rows: 24 } } } : {}),
});

describe.each([
  ["h1", false],
  ["h2", false],
  ["grpc", false],
  ["h1", true],
  ["h2", true],
] as const)("a child SIGKILLed from outside mid-stream (%s, terminal: %s)", (transport, pty) => {
  it("ends the stream with the signal, is reaped, and leaves nothing behind", async () => {
    const got = await killMidStream(transport, flood(pty), (pid) => pid);
    expectKilledEnd(got);
    // Reaped by the agent: not a zombie, gone from /proc.
    expect(await procState(got.pid!)).toBeUndefined();
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});

describe("a pipeline whose whole process group is SIGKILLed from outside", () => {
  it("ends the stream with the leader's signal, and no member of the group is left running", async () => {
    const script = `head -c ${FLOOD} /dev/zero | cat`;
    // The leader leads its own process group (setsid): -pid reaches the whole pipeline.
    const got = await killMidStream("h2", { process: { cmd: "/bin/sh", args: ["-c", script], envs: {} } }, (pid) => -pid);
    expectKilledEnd(got);
    // Members reparented away from the agent are someone else's to reap; they must not run.
    await eventually(async () => (await Promise.all((await groupMembers(got.pid!)).map(isRunning))).every((running) => !running));
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});
