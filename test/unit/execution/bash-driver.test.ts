/**
 * The built-in bash driver against real bash processes, through the KernelFactory interface the
 * execution service uses.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bashDriverFactory } from "../../../src/kernels/drivers/index.js";
import { reaped } from "../../../src/proc-stat.js";
import { KernelDiedError, type Kernel, type KernelEvent, type KernelOptions } from "../../../src/kernels/kernel.js";
import { lookupUser, userName, type User } from "../../../src/users.js";

const self = (): User => {
  const user = lookupUser(userName(process.getuid!()));
  if (user === undefined) throw new Error("the test user is not in /etc/passwd");
  return user;
};

interface Run {
  readonly outcome: Awaited<ReturnType<Kernel["execute"]>>;
  readonly events: KernelEvent[];
  readonly stdout: string;
  readonly stderr: string;
  readonly errors: Array<Extract<KernelEvent, { kind: "error" }>>;
}

function summarize(outcome: Run["outcome"], events: KernelEvent[]): Run {
  const text = (kind: "stdout" | "stderr"): string => events.map((e) => (e.kind === kind ? e.text : "")).join("");
  return {
    outcome,
    events,
    stdout: text("stdout"),
    stderr: text("stderr"),
    errors: events.filter((e): e is Extract<KernelEvent, { kind: "error" }> => e.kind === "error"),
  };
}

async function run(kernel: Kernel, code: string, env: Record<string, string> = {}): Promise<Run> {
  const events: KernelEvent[] = [];
  const outcome = await kernel.execute(code, { env, onEvent: (e) => events.push(e) });
  return summarize(outcome, events);
}

/** Starts a cell and waits until it has printed `started`, so an interrupt lands inside it. */
function runUntilStarted(kernel: Kernel, code: string): { started: Promise<void>; done: Promise<Run> } {
  const events: KernelEvent[] = [];
  let onStarted!: () => void;
  const started = new Promise<void>((resolve) => {
    onStarted = resolve;
  });
  let seen = "";
  const done = kernel
    .execute(code, {
      env: {},
      onEvent: (e) => {
        events.push(e);
        if (e.kind === "stdout") {
          seen += e.text;
          if (seen.includes("started")) onStarted();
        }
      },
    })
    .then((outcome) => summarize(outcome, events));
  return { started, done };
}

/** Processes still alive (not zombies) whose process group is `pgid`. */
function liveGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] !== "Z" && Number(fields[2]) === pgid) members.push(Number(entry));
  }
  return members;
}

describe("bash driver", () => {
  let dir: string;
  let kernel: Kernel;
  const options = (): KernelOptions => ({ cwd: dir, env: { FOO: "base" }, user: self() });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "bash-driver-test-"));
    kernel = await bashDriverFactory.create(options());
  });

  afterAll(async () => {
    await kernel.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it("is created started and idle, with a pid", () => {
    expect(kernel.state).toBe("idle");
    expect(kernel.pid).toBeGreaterThan(0);
    expect(existsSync(`/proc/${kernel.pid}`)).toBe(true);
  });

  it("keeps variables, functions, options and the working directory between executions", async () => {
    const first = await run(kernel, 'counter=41\ngreet() { echo "hello $1"; }\nshopt -s extglob\nmkdir -p sub && cd sub');
    expect(first.outcome.status).toBe("ok");
    const second = await run(kernel, "counter=$((counter + 1)); echo $counter; greet world; shopt -q extglob && echo extglob; pwd");
    expect(second.outcome.status).toBe("ok");
    expect(second.stdout).toBe(`42\nhello world\nextglob\n${join(dir, "sub")}\n`);
    await run(kernel, "cd ..");
  });

  it("keeps stdout and stderr apart", async () => {
    const result = await run(kernel, "echo to-out; echo to-err >&2; ls /definitely/missing/path");
    expect(result.stdout).toBe("to-out\n");
    expect(result.stderr).toContain("to-err\n");
    expect(result.stderr).toContain("/definitely/missing/path");
    expect(result.stdout).not.toContain("to-err");
  });

  it("reports a non-zero status of the cell as an error and goes on working", async () => {
    const failed = await run(kernel, "echo before; (exit 7)");
    expect(failed.outcome.status).toBe("error");
    expect(failed.stdout).toBe("before\n");
    expect(failed.errors).toEqual([{ kind: "error", name: "CommandError", value: "exit status 7", traceback: [] }]);
    const ok = await run(kernel, "true");
    expect(ok.outcome.status).toBe("ok");
    expect(ok.errors).toEqual([]);
  });

  it("counts executions", async () => {
    const a = await run(kernel, "true");
    const b = await run(kernel, "true");
    expect(b.outcome.executionCount).toBe(a.outcome.executionCount + 1);
  });

  it("passes env vars as data: quotes, newlines, $(...) and backticks are visible, never executed, and restored", async () => {
    const witness = join(dir, "executed");
    const tricky = `it's "quoted"\nsecond line $(touch ${witness}) \`touch ${witness}\` $HOME \\ end`;
    await run(kernel, "PLAIN=local");
    const during = await run(kernel, 'printf "%s|" "$FOO" "$PLAIN" "$TRICKY"; printf "\\n"; bash -c \'printf "child:%s|%s" "$TRICKY" "$PLAIN"\'', {
      FOO: "over",
      PLAIN: "exported now",
      TRICKY: tricky,
    });
    expect(during.outcome.status).toBe("ok");
    expect(during.stdout).toBe(`over|exported now|${tricky}|\nchild:${tricky}|exported now`);
    expect(existsSync(witness)).toBe(false);

    const after = await run(kernel, 'printf "%s|" "$FOO" "$PLAIN" "${TRICKY-unset}"; declare -p FOO PLAIN');
    expect(after.stdout).toBe('base|local|unset|declare -x FOO="base"\ndeclare -- PLAIN="local"\n');
  });

  it("refuses env var names bash cannot hold, without running the cell", async () => {
    const witness = join(dir, "ran");
    const result = await run(kernel, `touch ${witness}`, { "NOT-A-NAME": "x" });
    expect(result.outcome.status).toBe("error");
    expect(result.errors[0]?.name).toBe("EnvironmentError");
    expect(result.errors[0]?.value).toContain("NOT-A-NAME");
    expect(existsSync(witness)).toBe(false);
  });

  it("gives cells an empty stdin, so reading it neither hangs nor eats the control channel", async () => {
    const result = await run(kernel, 'read -r line; echo "read:[$line] status:$?"; cat; echo after-cat');
    expect(result.outcome.status).toBe("ok");
    expect(result.stdout).toBe("read:[] status:1\nafter-cat\n");
    expect((await run(kernel, "echo next")).stdout).toBe("next\n");
  });

  it("does not take user output that looks like a marker for the end of the cell", async () => {
    const result = await run(kernel, "printf '\\036SA0123456789abcdef01234567:0\\n'; echo still-running");
    expect(result.stdout).toBe("\x1eSA0123456789abcdef01234567:0\nstill-running\n");
  });

  it("keeps working when a cell redirects its own stdout and stderr", async () => {
    const result = await run(kernel, "exec 3>&1 4>&2 >/dev/null 2>&1; echo hidden; echo hidden >&2; exec >&3 2>&4 3>&- 4>&-; echo visible");
    expect(result.outcome.status).toBe("ok");
    expect(result.stdout).toBe("visible\n");
    expect(result.stderr).toBe("");
  });

  it("survives set -u and set -o pipefail in user code", async () => {
    await run(kernel, "set -u -o pipefail");
    const result = await run(kernel, 'echo "${FOO}"', { EXTRA: "1" });
    expect(result.outcome.status).toBe("ok");
    expect(result.stdout).toBe("base\n");
    await run(kernel, "set +u +o pipefail");
  });

  it("streams output without a trailing newline and decodes UTF-8 split across writes", async () => {
    const result = await run(
      kernel,
      "printf 'caf\\xc3'; sleep 0.2; printf '\\xa9 \\xe2\\x82'; sleep 0.2; printf '\\xac \\xf0\\x9f\\x98'; sleep 0.2; printf '\\x80'",
    );
    expect(result.stdout).toBe("café € 😀");
    expect(result.stdout).not.toContain("\ufffd");
    // Several chunks arrived, each decoded on its own: the split characters were held, not mangled.
    expect(result.events.filter((e) => e.kind === "stdout").length).toBeGreaterThan(1);
  });

  it("delivers a 10 MB output complete", async () => {
    const result = await run(kernel, "head -c 10000000 /dev/zero | tr '\\0' 'a'; echo; echo end >&2");
    expect(result.outcome.status).toBe("ok");
    expect(result.stdout.length).toBe(10_000_001);
    expect(/^a+\n$/.test(result.stdout)).toBe(true);
    expect(result.stderr).toBe("end\n");
  });

  it("runs executions one at a time, in order, each with its own output", async () => {
    const order: string[] = [];
    const first = kernel.execute("sleep 0.3; echo one", { env: {}, onEvent: (e) => e.kind === "stdout" && order.push(`first:${e.text}`) });
    const second = kernel.execute("echo two", { env: {}, onEvent: (e) => e.kind === "stdout" && order.push(`second:${e.text}`) });
    await Promise.all([first, second]);
    expect(order).toEqual(["first:one\n", "second:two\n"]);
  });

  it("interrupts a foreground program and keeps the shell and its state", async () => {
    await run(kernel, "kept=yes");
    const { started, done } = runUntilStarted(kernel, "echo started; sleep 1000; echo after-sleep");
    await started;
    expect(kernel.state).toBe("busy");
    await kernel.interrupt();
    const result = await done;
    expect(result.outcome.status).toBe("error");
    expect(result.errors.map((e) => e.name)).toEqual(["Interrupted"]);
    expect(result.stdout).toBe("started\n");
    const next = await run(kernel, "echo $kept");
    expect(next.outcome.status).toBe("ok");
    expect(next.stdout).toBe("yes\n");
  });

  it("interrupts a busy loop of builtins deep in functions, and the cell goes no further", async () => {
    await run(kernel, "spin() { while :; do :; done; echo after-loop; }\nouter() { spin; echo after-spin; }");
    const { started, done } = runUntilStarted(kernel, "echo started\nouter\necho after-outer");
    await started;
    await kernel.interrupt();
    const result = await done;
    expect(result.errors.map((e) => e.name)).toEqual(["Interrupted"]);
    expect(result.stdout).toBe("started\n");
    const next = await run(kernel, "outer() { echo redefined; }; outer; echo $kept");
    expect(next.stdout).toBe("redefined\nyes\n");
    expect(next.outcome.status).toBe("ok");
  });

  it("stops a cell interrupted the moment it starts, before it could print anything", async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const events: KernelEvent[] = [];
      const done = kernel.execute("sleep 1000; echo after", { env: {}, onEvent: (e) => events.push(e) });
      while (kernel.state !== "busy") await new Promise((resolve) => setImmediate(resolve));
      await kernel.interrupt();
      const outcome = await done;
      expect(outcome.status).toBe("error");
      expect(events.filter((e) => e.kind === "error").map((e) => (e.kind === "error" ? e.name : ""))).toEqual(["Interrupted"]);
      expect(events.some((e) => e.kind === "stdout")).toBe(false);
    }
  });

  it("does nothing to the next cell when interrupted while idle", async () => {
    await kernel.interrupt();
    const result = await run(kernel, "echo one; echo two");
    expect(result.outcome.status).toBe("ok");
    expect(result.stdout).toBe("one\ntwo\n");
  });
});

describe("bash driver: the shell ending", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "bash-driver-test-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports `exit 3` in a cell as an error and runs the next execution on a fresh shell", async () => {
    const kernel = await bashDriverFactory.create({ cwd: dir, env: {}, user: self() });
    const deaths: string[] = [];
    kernel.onDeath((reason) => deaths.push(reason));
    try {
      const firstPid = kernel.pid;
      await run(kernel, "lost=1");
      const exited = await run(kernel, "echo bye; exit 3; echo unreachable");
      expect(exited.outcome.status).toBe("error");
      expect(exited.stdout).toBe("bye\n");
      expect(exited.errors).toHaveLength(1);
      expect(exited.errors[0]?.name).toBe("ShellExited");
      expect(exited.errors[0]?.value).toContain("exit status 3");

      const next = await run(kernel, 'echo "fresh:${lost-unset}"');
      expect(next.outcome.status).toBe("ok");
      expect(next.stdout).toBe("fresh:unset\n");
      expect(kernel.pid).not.toBe(firstPid);
      expect(deaths).toEqual([]);
    } finally {
      await kernel.shutdown();
    }
  });

  it("rejects with KernelDiedError when the shell is killed mid-execution, then recovers", async () => {
    const kernel = await bashDriverFactory.create({ cwd: dir, env: {}, user: self() });
    const deaths: string[] = [];
    kernel.onDeath((reason) => deaths.push(reason));
    try {
      const pid = kernel.pid!;
      const { started, done } = runUntilStarted(kernel, "echo started; sleep 1000");
      await started;
      process.kill(pid, "SIGKILL");
      await expect(done).rejects.toBeInstanceOf(KernelDiedError);
      expect(deaths).toHaveLength(1);
      expect(deaths[0]).toContain("SIGKILL");
      expect(kernel.state).toBe("dead");
      expect(liveGroupMembers(pid)).toEqual([]);

      const next = await run(kernel, "echo back");
      expect(next.stdout).toBe("back\n");
      expect(kernel.state).toBe("idle");
    } finally {
      await kernel.shutdown();
    }
  });

  it("reports a death between executions through onDeath", async () => {
    const kernel = await bashDriverFactory.create({ cwd: dir, env: {}, user: self() });
    try {
      const death = new Promise<string>((resolve) => kernel.onDeath(resolve));
      process.kill(kernel.pid!, "SIGKILL");
      expect(await death).toContain("SIGKILL");
      expect(kernel.state).toBe("dead");
      expect((await run(kernel, "echo again")).stdout).toBe("again\n");
    } finally {
      await kernel.shutdown();
    }
  });

  it("catchUp waits for a death that happened but is not reported yet", async () => {
    const kernel = await bashDriverFactory.create({ cwd: dir, env: {}, user: self() });
    try {
      const deaths: string[] = [];
      kernel.onDeath((reason) => deaths.push(reason));
      // A process in its own session holds the shell's stdout: the exit is reported only once
      // the agent gives up draining it, well after the shell is gone.
      await run(kernel, "setsid sleep 1 &");
      const pid = kernel.pid!;
      process.kill(pid, "SIGKILL");
      while (!reaped(pid)) await new Promise((resolve) => setTimeout(resolve, 1));
      // Usually still "idle" here (the report waits 100 ms for the drain); on a loaded machine the
      // report may already be in, and then there is nothing to wait for: either way, once catchUp
      // resolves, the death is known.
      await kernel.catchUp();
      expect(kernel.state).toBe("dead");
      expect(deaths).toHaveLength(1);
      await kernel.catchUp(); // nothing more to wait for
      expect((await run(kernel, "echo again")).stdout).toBe("again\n");
    } finally {
      await kernel.shutdown();
    }
  });

  it("restarts: state is lost, a running execution ends as aborted", async () => {
    const kernel = await bashDriverFactory.create({ cwd: dir, env: {}, user: self() });
    const deaths: string[] = [];
    kernel.onDeath((reason) => deaths.push(reason));
    try {
      await run(kernel, "gone=1");
      const oldPid = kernel.pid;
      const { started, done } = runUntilStarted(kernel, "echo started; sleep 1000");
      await started;
      await kernel.restart();
      expect((await done).outcome.status).toBe("aborted");
      expect(kernel.pid).not.toBe(oldPid);
      expect(kernel.state).toBe("idle");
      const after = await run(kernel, 'echo "${gone-unset}"');
      expect(after.stdout).toBe("unset\n");
      expect(after.outcome.executionCount).toBe(1);
      expect(deaths).toEqual([]);
    } finally {
      await kernel.shutdown();
    }
  });

  it("shuts down the whole process group, leaves nothing alive behind, and is idempotent", async () => {
    const kernel = await bashDriverFactory.create({ cwd: dir, env: {}, user: self() });
    const pid = kernel.pid!;
    const background = await run(kernel, "sleep 1000 & echo $!");
    const child = Number(background.stdout.trim());
    expect(liveGroupMembers(pid).sort()).toEqual([pid, child].sort());
    const { started, done } = runUntilStarted(kernel, "echo started; sleep 1000");
    await started;
    await kernel.shutdown();
    await kernel.shutdown();
    expect((await done).outcome.status).toBe("aborted");
    expect(kernel.state).toBe("dead");
    expect(kernel.pid).toBeUndefined();
    expect(liveGroupMembers(pid)).toEqual([]);
    // The shell itself was reaped by the agent, not left a zombie.
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    await expect(kernel.execute("true", { env: {}, onEvent: () => undefined })).rejects.toBeInstanceOf(KernelDiedError);
  });

  it("runs as the requested user", async () => {
    const nobody = lookupUser("nobody");
    const user = process.getuid!() === 0 && nobody !== undefined ? nobody : self();
    const kernel = await bashDriverFactory.create({ cwd: "/", env: { GREETING: "hi" }, user });
    try {
      const result = await run(kernel, 'id -u; echo "$USER $GREETING $SECRET"', { SECRET: "s" });
      expect(result.outcome.status).toBe("ok");
      expect(result.stdout).toBe(`${user.uid}\n${user.name} hi s\n`);
    } finally {
      await kernel.shutdown();
    }
  });

  it("fails to create with a clear message when the working directory is missing", async () => {
    await expect(bashDriverFactory.create({ cwd: join(dir, "missing"), env: {}, user: self() })).rejects.toThrow(/working directory .*missing/);
  });
});
