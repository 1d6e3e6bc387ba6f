/**
 * Fault: the thread that forks and reaps the agent's children (src/supervisor/fork-thread.ts) ends
 * while children run. Nothing may be lost track of: each running child is still reported (its
 * Start stream ends with the end event), its whole group is killed and reaped (no zombie, no
 * member left), and the next Start works on a new thread. Pipes and terminals.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Process } from "../../../src/gen/sandboxagent/api_pb.js";
import { forkThread } from "../../../src/supervisor/fork-thread.js";
import { AUTH, eventually, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { collect } from "../../helpers/process.js";
import { baselineOf, expectBackToBaseline, expectServesOthers, groupMembers, procState, withClients, type Held } from "../../helpers/faults.js";

let agent: TestAgent;
let baseline: Held;

beforeAll(async () => {
  agent = await startTestAgent({ kernelPoolSize: 0 });
  // Warm-up, as in child-killed.test.ts: what the first spawn of each kind creates for good.
  await withClients(agent.url, "h2", async (clients) => {
    await collect(clients.of(Process).start({ process: { cmd: "true", args: [], envs: {} } }, { headers: AUTH }));
    await collect(clients.of(Process).start({ process: { cmd: "true", args: [], envs: {} }, pty: { size: { cols: 80, rows: 24 } } }, { headers: AUTH }));
  });
  baseline = await baselineOf(agent);
});

afterAll(async () => {
  await agent?.close();
});

describe.each([false, true])("the fork thread ends while children run (terminal: %s)", (pty) => {
  it("reports each child's end, kills and reaps its group, and starts the next child on a new thread", async () => {
    await withClients(agent.url, "h2", async (clients) => {
      const proc = clients.of(Process);
      // A background member too: the group, not just the leader, must go.
      const request = {
        process: { cmd: "bash", args: ["-c", "sleep 300 & echo up; wait"], envs: {} },
        ...(pty ? { pty: { size: { cols: 80, rows: 24 } } } : {}),
      };
      let crashed: Promise<void> | undefined;
      let members: number[] = [];
      const got = await collect(proc.start(request, { headers: AUTH }), (so) => {
        const text = (pty ? so.pty : so.stdout).toString();
        if (crashed === undefined && so.pid !== undefined && text.includes("up")) {
          crashed = (async () => {
            members = await groupMembers(so.pid!);
            await forkThread.crashForFaultTest();
          })();
        }
      });
      await crashed;
      expect(crashed, "the child never said it was up").toBeDefined();
      expect(got.kinds.at(-1)).toBe("end");
      expect(got.end).toMatchObject({ exited: false, status: "signal: killed" });
      expect(members.length).toBeGreaterThan(1);
      // Reaped, every member: gone from /proc, not zombies.
      for (const pid of members) await eventually(async () => (await procState(pid)) === undefined);

      const again = await collect(
        proc.start({ process: { cmd: "echo", args: ["again"], envs: {} }, ...(pty ? { pty: { size: { cols: 80, rows: 24 } } } : {}) }, { headers: AUTH }),
      );
      expect((pty ? again.pty : again.stdout).toString()).toContain("again");
      expect(again.end).toMatchObject({ exitCode: 0 });
    });
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});
