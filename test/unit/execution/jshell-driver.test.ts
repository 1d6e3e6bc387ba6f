/**
 * The built-in Java (jshell) driver against real JVMs, through the KernelFactory interface the
 * execution service uses.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jshellDriverFactory } from "../../../src/kernels/drivers/index.js";
import { KernelDiedError, type Kernel, type KernelEvent } from "../../../src/kernels/kernel.js";
import { lookupUser, userName, type User } from "../../../src/users.js";

const self = (): User => {
  const user = lookupUser(userName(process.getuid!()));
  if (user === undefined) throw new Error("the test user is not in /etc/passwd");
  return user;
};

type ErrorEvent = Extract<KernelEvent, { kind: "error" }>;
type ResultEvent = Extract<KernelEvent, { kind: "result" }>;

interface Run {
  readonly outcome: Awaited<ReturnType<Kernel["execute"]>>;
  readonly events: KernelEvent[];
  readonly stdout: string;
  readonly stderr: string;
  readonly errors: ErrorEvent[];
  readonly results: ResultEvent[];
}

function summarize(outcome: Run["outcome"], events: KernelEvent[]): Run {
  const text = (kind: "stdout" | "stderr"): string => events.map((e) => (e.kind === kind ? e.text : "")).join("");
  return {
    outcome,
    events,
    stdout: text("stdout"),
    stderr: text("stderr"),
    errors: events.filter((e): e is ErrorEvent => e.kind === "error"),
    results: events.filter((e): e is ResultEvent => e.kind === "result"),
  };
}

async function run(kernel: Kernel, code: string, env: Record<string, string> = {}): Promise<Run> {
  const events: KernelEvent[] = [];
  const outcome = await kernel.execute(code, { env, onEvent: (e) => events.push(e) });
  return summarize(outcome, events);
}

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

const plainText = (result: ResultEvent | undefined): unknown => result?.data["text/plain"];

function liveGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] !== "Z" && Number(fields[2]) === pgid) members.push(Number(entry));
  }
  return members;
}

describe("jshell driver", () => {
  let dir: string;
  let kernel: Kernel;

  beforeAll(async () => {
    expect(await jshellDriverFactory.available()).toBe(true);
    dir = await mkdtemp(join(tmpdir(), "jshell-driver-test-"));
    kernel = await jshellDriverFactory.create({ cwd: dir, env: { FOO: "base" }, user: self() });
  });

  afterAll(async () => {
    await kernel.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it("is created started and idle, with a pid", () => {
    expect(kernel.state).toBe("idle");
    expect(kernel.pid).toBeGreaterThan(0);
  });

  it("keeps imports, variables, methods and classes between executions", async () => {
    const first = await run(
      kernel,
      [
        "import java.time.LocalDate;",
        "int counter = 41;",
        "String greet(String who) {",
        '    return "hello " + who;',
        "}",
        "class Box {",
        "    final int value;",
        "    Box(int value) { this.value = value; }",
        "}",
      ].join("\n"),
    );
    expect(first.outcome.status).toBe("ok");
    expect(first.results).toEqual([]);
    const second = await run(
      kernel,
      'counter++;\nSystem.out.println(greet("world") + " " + new Box(counter).value + " " + LocalDate.of(2024, 2, 29).getDayOfWeek());',
    );
    expect(second.outcome.status).toBe("ok");
    expect(second.stdout).toBe("hello world 42 THURSDAY\n");
    // jshell's default imports are there, as in the jshell tool.
    const defaults = await run(kernel, "List<Integer> xs = new ArrayList<>(List.of(3, 1, 2)); Collections.sort(xs); xs");
    expect(plainText(defaults.results[0])).toBe("[1, 2, 3]");
  });

  it("answers with the value of the trailing expression only", async () => {
    const expression = await run(kernel, "int a = 6;\na * 7");
    expect(expression.outcome.status).toBe("ok");
    expect(expression.results).toHaveLength(1);
    expect(plainText(expression.results[0])).toBe("42");
    expect(expression.results[0]?.executionCount).toBe(expression.outcome.executionCount);
    const text = await run(kernel, '"line"');
    expect(plainText(text.results[0])).toBe('"line"');
    const statement = await run(kernel, 'System.out.println("no value");');
    expect(statement.results).toEqual([]);
    expect(statement.stdout).toBe("no value\n");
  });

  it("keeps stdout and stderr apart", async () => {
    const result = await run(kernel, 'System.out.println("to-out"); System.err.println("to-err"); System.out.print("more");');
    expect(result.stdout).toBe("to-out\nmore");
    expect(result.stderr).toBe("to-err\n");
  });

  it("reports an uncaught exception with its class, message and stack, and stops the cell there", async () => {
    const result = await run(
      kernel,
      'void explode() { throw new IllegalStateException("boom"); }\nSystem.out.println("before");\nexplode();\nSystem.out.println("after");',
    );
    expect(result.outcome.status).toBe("error");
    expect(result.stdout).toBe("before\n");
    expect(result.errors).toHaveLength(1);
    const error = result.errors[0]!;
    expect(error.name).toBe("java.lang.IllegalStateException");
    expect(error.value).toBe("boom");
    expect(error.traceback[0]).toBe("java.lang.IllegalStateException: boom");
    expect(error.traceback.some((line) => line.includes("explode"))).toBe(true);

    const arithmetic = await run(kernel, "int zero = 0;\n10 / zero");
    expect(arithmetic.errors.map((e) => [e.name, e.value])).toEqual([["java.lang.ArithmeticException", "/ by zero"]]);
    expect(arithmetic.results).toEqual([]);
  });

  it("reports a compile error as CompilationError and keeps earlier state", async () => {
    await run(kernel, "int survivor = 7;");
    const result = await run(kernel, 'int broken = "text";');
    expect(result.outcome.status).toBe("error");
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.name).toBe("CompilationError");
    expect(result.errors[0]?.value).toContain("incompatible types");
    expect(result.errors[0]?.traceback.join("\n")).toContain('int broken = "text";');

    const missing = await run(kernel, "undefinedName + 1");
    expect(missing.errors[0]?.name).toBe("CompilationError");
    expect(missing.errors[0]?.value).toContain("cannot find symbol");

    const unfinished = await run(kernel, "int half = (");
    expect(unfinished.errors[0]?.name).toBe("CompilationError");

    expect(plainText((await run(kernel, "survivor")).results[0])).toBe("7");
  });

  it("passes env vars as data, visible to System.getenv and ProcessBuilder, and restores them", async () => {
    const witness = join(dir, "executed");
    const tricky = `it's "quoted"\nsecond line $(touch ${witness}) \`touch ${witness}\` \\ end \u00e9 "); System.exit(9); ("`;
    const during = await run(
      kernel,
      [
        'System.out.print(System.getenv("FOO") + "|" + System.getenv("TRICKY") + "|");',
        'ProcessBuilder builder = new ProcessBuilder("sh", "-c", "printf %s \\"$TRICKY\\"");',
        'System.out.print(builder.environment().get("TRICKY").equals(System.getenv("TRICKY")) + "|");',
        "Process p = builder.start();",
        "System.out.print(new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8));",
        "p.waitFor();",
      ].join("\n"),
      { FOO: "over", TRICKY: tricky },
    );
    expect(during.errors).toEqual([]);
    expect(during.stdout).toBe(`over|${tricky}|true|${tricky}`);
    expect(existsSync(witness)).toBe(false);

    const after = await run(kernel, 'System.out.print(System.getenv("FOO") + "|" + System.getenv("TRICKY"));');
    expect(after.stdout).toBe("base|null");
  });

  it("gives cells an empty stdin", async () => {
    const result = await run(kernel, "System.in.read()");
    expect(result.outcome.status).toBe("ok");
    expect(plainText(result.results[0])).toBe("-1");
  });

  it("decodes UTF-8 split across writes", async () => {
    const result = await run(
      kernel,
      [
        'byte[] bytes = "café € 😀".getBytes(java.nio.charset.StandardCharsets.UTF_8);',
        "for (byte b : bytes) { System.out.write(b); System.out.flush(); Thread.sleep(15); }",
      ].join("\n"),
    );
    expect(result.outcome.status).toBe("ok");
    expect(result.stdout).toBe("café € 😀");
    expect(result.events.filter((e) => e.kind === "stdout").length).toBeGreaterThan(1);
  });

  it("delivers a 10 MB output complete", async () => {
    const result = await run(kernel, 'System.out.print("a".repeat(10_000_000)); System.out.println(); System.err.print("end");');
    expect(result.outcome.status).toBe("ok");
    expect(result.stdout.length).toBe(10_000_001);
    expect(/^a+\n$/.test(result.stdout)).toBe(true);
    expect(result.stderr).toBe("end");
  });

  it("interrupts a busy loop and keeps the state", async () => {
    await run(kernel, 'String kept = "yes";');
    const { started, done } = runUntilStarted(kernel, 'System.out.println("started");\nwhile (true) {}');
    await started;
    await kernel.interrupt();
    const result = await done;
    expect(result.outcome.status).toBe("error");
    expect(result.errors.map((e) => e.name)).toEqual(["Interrupted"]);
    expect(plainText((await run(kernel, "kept")).results[0])).toBe('"yes"');
  });

  it("interrupts a sleep, and the rest of the cell does not run", async () => {
    const { started, done } = runUntilStarted(kernel, 'System.out.println("started");\nThread.sleep(1_000_000);\nSystem.out.println("after");');
    await started;
    await kernel.interrupt();
    const result = await done;
    expect(result.errors.map((e) => e.name)).toEqual(["Interrupted"]);
    expect(result.stdout).toBe("started\n");
    expect((await run(kernel, "1 + 1")).outcome.status).toBe("ok");
  });

  it("stops a cell interrupted the moment it starts, before it could print anything", async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const events: KernelEvent[] = [];
      const done = kernel.execute('Thread.sleep(1_000_000);\nSystem.out.println("after");', { env: {}, onEvent: (e) => events.push(e) });
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
    const result = await run(kernel, "2 + 2");
    expect(result.outcome.status).toBe("ok");
    expect(plainText(result.results[0])).toBe("4");
  });
});

describe("jshell driver: the JVM ending", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jshell-driver-test-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports System.exit as an error and runs the next execution on a fresh JVM", async () => {
    const kernel = await jshellDriverFactory.create({ cwd: dir, env: {}, user: self() });
    try {
      const firstPid = kernel.pid;
      await run(kernel, "int lost = 1;");
      const exited = await run(kernel, 'System.out.println("bye");\nSystem.exit(3);');
      expect(exited.outcome.status).toBe("error");
      expect(exited.stdout).toBe("bye\n");
      expect(exited.errors.map((e) => e.name)).toEqual(["SystemExit"]);
      expect(exited.errors[0]?.value).toContain("exit status 3");
      const next = await run(kernel, "lost");
      expect(next.errors[0]?.name).toBe("CompilationError");
      expect(kernel.pid).not.toBe(firstPid);
    } finally {
      await kernel.shutdown();
    }
  });

  it("rejects with KernelDiedError when the JVM is killed mid-execution, then recovers", async () => {
    const kernel = await jshellDriverFactory.create({ cwd: dir, env: {}, user: self() });
    const deaths: string[] = [];
    kernel.onDeath((reason) => deaths.push(reason));
    try {
      const pid = kernel.pid!;
      const { started, done } = runUntilStarted(kernel, 'System.out.println("started");\nThread.sleep(1_000_000);');
      await started;
      process.kill(pid, "SIGKILL");
      await expect(done).rejects.toBeInstanceOf(KernelDiedError);
      expect(deaths).toHaveLength(1);
      expect(kernel.state).toBe("dead");
      expect(plainText((await run(kernel, "3 * 3")).results[0])).toBe("9");
    } finally {
      await kernel.shutdown();
    }
  });

  it("shuts down leaving no process behind, and is idempotent", async () => {
    const kernel = await jshellDriverFactory.create({ cwd: dir, env: {}, user: self() });
    const pid = kernel.pid!;
    const child = await run(kernel, 'Process p = new ProcessBuilder("sleep", "1000").start();\np.pid()');
    const childPid = Number(plainText(child.results[0]));
    expect(liveGroupMembers(pid)).toContain(childPid);
    await kernel.shutdown();
    await kernel.shutdown();
    expect(kernel.state).toBe("dead");
    expect(liveGroupMembers(pid)).toEqual([]);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });

  it("runs as the requested user", async () => {
    const nobody = lookupUser("nobody");
    const user = process.getuid!() === 0 && nobody !== undefined ? nobody : self();
    const kernel = await jshellDriverFactory.create({ cwd: "/", env: {}, user });
    try {
      const result = await run(kernel, 'System.out.print(System.getProperty("user.name") + " " + System.getenv("USER"));');
      expect(result.outcome.status).toBe("ok");
      expect(result.stdout).toBe(`${user.name} ${user.name}`);
    } finally {
      await kernel.shutdown();
    }
  });
});
