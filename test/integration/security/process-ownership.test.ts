/**
 * Issue 14, item 5: a process belongs to the Linux user it runs as. A caller acting as another
 * unprivileged user (sa-mallory) can neither see nor touch it: every RPC that names it answers
 * not_found, word for word as for a process that does not exist, and nothing reaches the process
 * (no input, no signal, no resize, no EOF). Root sees and controls everything. Real users (useradd),
 * real processes and terminals, real clients over Connect JSON on HTTP/1.1 and gRPC on HTTP/2.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { existsSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Process, Signal, StreamInputRequestSchema, type ProcessSelector, type StreamInputRequest } from "../../../src/gen/sandboxagent/api_pb.js";
import type { User } from "../../../src/users.js";
import { AUTH, client, eventually, startTestAgent, type TestAgent, type TransportName } from "../../helpers/agent.js";
import { ATTACKER, ensureUser, VICTIM } from "../../helpers/linux-users.js";
import { collect, isRunning, type Collected } from "../../helpers/process.js";

let agent: TestAgent;
let mallory: User;
let alice: User;

const as = (name: string) => ({ headers: { ...AUTH, "x-user": name } });
const byPid = (pid: number) => ({ selector: { case: "pid" as const, value: pid } });
const byTag = (tag: string) => ({ selector: { case: "tag" as const, value: tag } });
const stdin = (text: string) => ({ input: { case: "stdin" as const, value: Buffer.from(text) } });
const ptyInput = (text: string) => ({ input: { case: "pty" as const, value: Buffer.from(text) } });

/** A process some user started, read in the background for as long as it runs. */
interface Victim {
  readonly owner: string;
  readonly kind: "pipe" | "pty";
  readonly tag: string;
  readonly pid: number;
  readonly out: Collected;
  /** Lines the owner wrote and saw come back, in order. */
  readonly probes: string[];
}

let victimCount = 0;

/**
 * A pipe victim is `cat` (what it reads comes back on stdout) behind a shell that reports a
 * SIGTERM; a terminal victim is an interactive shell, the one a person would type into, told to
 * report a SIGTERM too (interactive shells ignore it otherwise).
 */
async function startVictim(owner: string, kind: "pipe" | "pty"): Promise<Victim> {
  const tag = `victim-${owner}-${kind}-${++victimCount}`;
  const request =
    kind === "pipe"
      ? { process: { cmd: "/bin/sh", args: ["-c", "trap 'echo SIGNALLED' TERM; cat; echo CAT-ENDED"], envs: {} }, tag }
      : { process: { cmd: "/bin/sh", args: [], envs: {} }, tag, pty: { size: { cols: 80, rows: 24 } } };
  let out: Collected | undefined;
  void collect(client(Process, agent.url, "connect-h2").start(request, as(owner)), (so) => (out = so));
  const started = (await eventually(() => (out?.pid !== undefined ? out : undefined)))!;
  const victim: Victim = { owner, kind, tag, pid: started.pid!, out: started, probes: [] };
  if (kind === "pty") {
    await client(Process, agent.url, "connect-h2").sendInput({ process: byPid(victim.pid), input: ptyInput("trap 'echo SIGNAL''LED' TERM\r") }, as(owner));
  }
  await probe(victim);
  return victim;
}

/**
 * The owner writes a line and waits until it has gone through: cat echoes it, the shell runs it.
 * Input is written in order, so whatever an attacker's request had written would have arrived
 * before it. The shell's echo of the typed line shows `"pro""be-N"`; only running it prints `probe-N`.
 */
async function probe(victim: Victim, asUser = victim.owner): Promise<void> {
  const line = `probe-${victim.probes.length + 1}`;
  const c = client(Process, agent.url, "connect-h2");
  if (victim.kind === "pipe") {
    await c.sendInput({ process: byPid(victim.pid), input: stdin(`${line}\n`) }, as(asUser));
    await eventually(() => victim.out.stdout.toString().includes(`${line}\n`));
  } else {
    await c.sendInput({ process: byPid(victim.pid), input: ptyInput(`echo "${line.slice(0, 3)}""${line.slice(3)}"\r`) }, as(asUser));
    await eventually(() => victim.out.pty.toString().includes(`${line}\r\n`));
  }
  victim.probes.push(line);
}

/** The terminal's size as the shell in it sees it. */
async function terminalSize(victim: Victim): Promise<string> {
  const c = client(Process, agent.url, "connect-h2");
  const before = victim.out.pty.length;
  await c.sendInput({ process: byPid(victim.pid), input: ptyInput(`echo "si""ze=$(stty size)."\r`) }, as(victim.owner));
  const found = await eventually(() => /size=(\d+ \d+)\./.exec(victim.out.pty.subarray(before).toString()));
  return found![1]!;
}

/** Nothing but the owner's own probes ever reached the victim, and it still runs and reads. */
async function untouched(victim: Victim, marker: string): Promise<void> {
  await probe(victim);
  expect(await isRunning(victim.pid)).toBe(true);
  expect(victim.out.end).toBeUndefined();
  if (victim.kind === "pipe") {
    expect(victim.out.stdout.toString()).toBe(victim.probes.map((line) => `${line}\n`).join(""));
  } else {
    const seen = victim.out.pty.toString();
    expect(seen).not.toContain("MALLORY");
    expect(seen).not.toContain("SIGNALLED");
    expect(existsSync(marker)).toBe(false);
    expect(await terminalSize(victim)).toBe("24 80");
  }
}

/** Awaits `call`, which must fail with not_found and exactly the message a missing process gets. */
async function expectNotFound(call: Promise<unknown>, selector: { selector: ProcessSelector["selector"] }): Promise<void> {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConnectError);
  const err = caught as ConnectError;
  const chosen = selector.selector;
  const what = chosen.case === "pid" ? `pid ${chosen.value}` : `tag ${JSON.stringify(chosen.value)}`;
  expect([Code[err.code], err.rawMessage]).toEqual([Code[Code.NotFound], `process with ${what} not found`]);
}

const victims: Victim[] = [];
const markers: string[] = [];

beforeAll(async () => {
  mallory = ensureUser(ATTACKER);
  alice = ensureUser(VICTIM);
  agent = await startTestAgent();
  for (const owner of [alice.name, "root"]) for (const kind of ["pipe", "pty"] as const) victims.push(await startVictim(owner, kind));
});

afterAll(async () => {
  const c = client(Process, agent.url, "connect-h2");
  for (const victim of victims) await c.sendSignal({ process: byPid(victim.pid), signal: Signal.SIGKILL }, { headers: AUTH }).catch(() => undefined);
  await agent?.close();
  for (const marker of markers) rmSync(marker, { force: true });
});

const ATTACK_TRANSPORTS: TransportName[] = ["connect-json-h1", "grpc"];
const VICTIMS = [
  { owner: "sa-alice", kind: "pipe" },
  { owner: "sa-alice", kind: "pty" },
  { owner: "root", kind: "pipe" },
  { owner: "root", kind: "pty" },
] as const;

describe.each(ATTACK_TRANSPORTS.flatMap((transport) => VICTIMS.map((victim) => ({ transport, ...victim }))))(
  "sa-mallory against $owner's $kind process over $transport",
  ({ transport, owner, kind }) => {
    const victim = (): Victim => victims.find((v) => v.owner === owner && v.kind === kind)!;
    const attacker = (): Client<typeof Process> => client(Process, agent.url, transport);
    const selectors = () => [byPid(victim().pid), byTag(victim().tag)];
    const marker = (): string => `/tmp/sa-mallory-was-here-${transport}-${owner}-${kind}`;
    /** What mallory types: had it arrived, it would show in the terminal and leave a file behind. */
    const payload = (): string => {
      if (!markers.includes(marker())) markers.push(marker());
      return `touch ${marker()}; echo MALLORY\r`;
    };

    it("List does not show it", async () => {
      const listed = await attacker().list({}, as(mallory.name));
      const v = victim();
      expect(listed.processes.map((p) => p.pid)).not.toContain(v.pid);
      expect(listed.processes.map((p) => p.tag)).not.toContain(v.tag);
    });

    it("Connect: not_found, and not one event of it", async () => {
      for (const selector of selectors()) {
        // Stops at the first event, should one come, rather than following the process.
        const abort = new AbortController();
        const got = await collect(attacker().connect({ process: selector }, { ...as(mallory.name), signal: abort.signal }), () => abort.abort());
        expect(got.kinds).toEqual([]);
        await expectNotFound(Promise.reject(got.error), selector);
      }
      await untouched(victim(), marker());
    });

    it("SendInput: not_found, and the input never reaches it", async () => {
      for (const selector of selectors()) {
        // Both kinds of input: the owner would get failed_precondition for the wrong one, which
        // would confirm that the process exists.
        await expectNotFound(attacker().sendInput({ process: selector, input: ptyInput(payload()) }, as(mallory.name)), selector);
        await expectNotFound(attacker().sendInput({ process: selector, input: stdin(payload()) }, as(mallory.name)), selector);
      }
      await untouched(victim(), marker());
    });

    it("CloseStdin: not_found, and its input stays open", async () => {
      for (const selector of selectors()) await expectNotFound(attacker().closeStdin({ process: selector }, as(mallory.name)), selector);
      await untouched(victim(), marker());
    });

    it("SendSignal: not_found, and no signal reaches it", async () => {
      for (const selector of selectors()) {
        await expectNotFound(attacker().sendSignal({ process: selector, signal: Signal.SIGTERM }, as(mallory.name)), selector);
        await expectNotFound(attacker().sendSignal({ process: selector, signal: Signal.SIGKILL }, as(mallory.name)), selector);
      }
      await untouched(victim(), marker());
    });

    it("Update: not_found, and its terminal keeps its size", async () => {
      for (const selector of selectors()) {
        await expectNotFound(attacker().update({ process: selector, pty: { size: { cols: 132, rows: 50 } } }, as(mallory.name)), selector);
      }
      await untouched(victim(), marker());
    });
  },
);

// StreamInput is a client stream: HTTP/2 clients only.
describe.each(VICTIMS)("sa-mallory against $owner's $kind process: StreamInput over grpc", ({ owner, kind }) => {
  it("not_found, and the input never reaches it", async () => {
    const victim = victims.find((v) => v.owner === owner && v.kind === kind)!;
    const marker = `/tmp/sa-mallory-was-here-stream-${owner}-${kind}`;
    markers.push(marker);
    const payload = `touch ${marker}; echo MALLORY\r`;
    for (const selector of [byPid(victim.pid), byTag(victim.tag)]) {
      async function* requests(): AsyncGenerator<StreamInputRequest> {
        yield create(StreamInputRequestSchema, { event: { case: "start", value: { process: selector } } });
        for (const input of [ptyInput(payload), stdin(payload)]) yield create(StreamInputRequestSchema, { event: { case: "data", value: { input } } });
      }
      await expectNotFound(client(Process, agent.url, "grpc").streamInput(requests(), as(mallory.name)), selector);
    }
    await untouched(victim, marker);
  });
});

describe("what each user sees", () => {
  const c = () => client(Process, agent.url, "connect-h2");

  it("a user lists its own processes only; root lists everybody's", async () => {
    const own = await startVictim(mallory.name, "pipe");
    victims.push(own);
    const pidsOf = async (name: string) => (await c().list({}, as(name))).processes.map((p) => p.pid);
    const aliceOwn = victims.filter((v) => v.owner === alice.name).map((v) => v.pid);
    const rootOwn = victims.filter((v) => v.owner === "root").map((v) => v.pid);
    expect((await pidsOf(mallory.name)).sort()).toEqual([own.pid]);
    expect((await pidsOf(alice.name)).sort()).toEqual([...aliceOwn].sort());
    const all = await pidsOf("root");
    for (const pid of [...aliceOwn, ...rootOwn, own.pid]) expect(all).toContain(pid);
  });

  it("root still reaches everybody's processes: input, resize, connect, signal", async () => {
    for (const victim of victims.filter((v) => v.owner === alice.name)) {
      await probe(victim, "root");
      const attached = collect(c().connect({ process: byPid(victim.pid) }, { headers: AUTH }));
      if (victim.kind === "pty") {
        await c().update({ process: byTag(victim.tag), pty: { size: { cols: 100, rows: 30 } } }, { headers: AUTH });
        expect(await terminalSize(victim)).toBe("30 100");
      }
      await c().sendSignal({ process: byTag(victim.tag), signal: Signal.SIGKILL }, { headers: AUTH });
      const got = await attached;
      expect([got.pid, got.end?.status]).toEqual([victim.pid, "signal: killed"]);
    }
  });
});

describe("tags", () => {
  const c = () => client(Process, agent.url, "connect-h2");

  /** Starts `sleep` with a tag as `user`; resolves with its pid, or the error Start gave. */
  async function startTagged(user: string, tag: string): Promise<number | ConnectError> {
    let out: Collected | undefined;
    const done = collect(c().start({ process: { cmd: "sleep", args: ["1000"], envs: {} }, tag }, as(user)), (so) => (out = so));
    return (await Promise.race([eventually(() => out?.pid), done.then((got) => ConnectError.from(got.error))]))!;
  }

  it("a tag another user's process holds does not exist for others: Start takes it for the caller", async () => {
    const tag = "shared-name";
    const alicePid = await startTagged(alice.name, tag);
    expect(typeof alicePid).toBe("number");
    const malloryPid = await startTagged(mallory.name, tag);
    expect(typeof malloryPid).toBe("number");
    expect(malloryPid).not.toBe(alicePid);
    // Each user's tag names that user's own process.
    const connected = async (user: string) => {
      const abort = new AbortController();
      const got = await collect(c().connect({ process: byTag(tag) }, { ...as(user), signal: abort.signal }), (so) => so.pid !== undefined && abort.abort());
      return got.pid;
    };
    expect(await connected(alice.name)).toBe(alicePid);
    expect(await connected(mallory.name)).toBe(malloryPid);
    // Within one user, tags stay unique among running processes.
    const again = await startTagged(mallory.name, tag);
    expect(again).toBeInstanceOf(ConnectError);
    expect((again as ConnectError).code).toBe(Code.AlreadyExists);
    // Root, who holds no process of that tag, is told to choose by pid rather than given either.
    const ambiguous = await collect(c().connect({ process: byTag(tag) }, { headers: AUTH }));
    expect((ambiguous.error as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((ambiguous.error as ConnectError).rawMessage).toContain("select it by pid");
    await c().sendSignal({ process: byPid(malloryPid as number), signal: Signal.SIGKILL }, as(mallory.name));
    await eventually(async () => !(await isRunning(malloryPid as number)));
    // With one running process of that tag left, root's tag names it.
    await c().sendSignal({ process: byTag(tag), signal: Signal.SIGKILL }, { headers: AUTH });
    await eventually(async () => !(await isRunning(alicePid as number)));
  });

  it("a tag root's process holds does not stop a user from using it, and root's tag stays root's", async () => {
    const tag = "root-name";
    const rootPid = await startTagged("root", tag);
    const malloryPid = await startTagged(mallory.name, tag);
    expect(typeof malloryPid).toBe("number");
    await c().sendSignal({ process: byTag(tag), signal: Signal.SIGKILL }, { headers: AUTH });
    await eventually(async () => !(await isRunning(rootPid as number)));
    expect(await isRunning(malloryPid as number)).toBe(true);
    await c().sendSignal({ process: byTag(tag), signal: Signal.SIGKILL }, as(mallory.name));
    await eventually(async () => !(await isRunning(malloryPid as number)));
  });
});
