/**
 * The official SDK's commands.*, pty.* and processes.* against a real agent: what each call sends
 * and expects is in @scalebox/sdk's dist (Commands, Pty, ProcessManager).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { eventually, tempDir } from "../../helpers/agent.js";
import { startSdkSession, type SdkSandbox, type SdkSession } from "../../helpers/sdk.js";
import { groupMembers, isRunning } from "../../helpers/process.js";

vi.mock(import("../../../src/users.js"), async (real) => (await import("../../helpers/users.js")).withIsolatedRootHome(await real()));

let session: SdkSession;
let sbx: SdkSandbox;
beforeAll(async () => {
  session = await startSdkSession();
  ({ sandbox: sbx } = session);
});
afterAll(async () => {
  await session?.close();
});

const decoder = new TextDecoder();

describe("sdk commands", () => {
  it("runs a command in the foreground with envs and cwd", async () => {
    const dir = await tempDir();
    try {
      const result = await sbx.commands.run('echo "$GREETING from $(pwd)"; echo warn >&2', { envs: { GREETING: "hi there" }, cwd: dir.path });
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(`hi there from ${dir.path}\n`);
      expect(result.stderr).toBe("warn\n");
      expect(result.error).toBeUndefined();
    } finally {
      await dir.cleanup();
    }
  });

  it("reports a non-zero exit as a result, not as a failed call", async () => {
    const result = await sbx.commands.run("echo partial; exit 3");
    expect(result.exitCode).toBe(3);
    expect(result.stdout).toBe("partial\n");
  });

  it("keeps UTF-8 intact although the SDK decodes every frame on its own", async () => {
    const result = await sbx.commands.run('for b in e2 82 ac f0 9f 98 80; do printf "\\\\x$b"; sleep 0.02; done');
    expect(result.stdout).toBe("€😀");
  });

  it("kills a command whose timeoutMs passes, with everything it started", async () => {
    const before = new Set((await sbx.commands.list()).map((p) => p.pid));
    // An empty HOME keeps the machine's own login scripts out of it: killing a login shell in the
    // middle of, say, `pyenv rehash` would leave that tool's lock file behind.
    const home = await tempDir();
    try {
      await expect(sbx.commands.run("sleep 1000 & sleep 1000; wait", { timeoutMs: 1500, envs: { HOME: home.path } })).rejects.toThrow();
      await eventually(async () => (await sbx.commands.list()).every((p) => before.has(p.pid)));
    } finally {
      await home.cleanup();
    }
  });

  it("reports a missing working directory as an error", async () => {
    await expect(sbx.commands.run("pwd", { cwd: "/no/such/dir" })).rejects.toThrow(/invalid_argument|working directory/);
  });

  it("runs in the background: list, connect (with what was missed), sendStdin, kill", async () => {
    const handle = await sbx.commands.run("echo early; read line; echo got $line; sleep 1000", { background: true });
    await eventually(() => handle.stdout.includes("early"));
    const pid = handle.pid;
    const listed = await sbx.commands.list();
    const entry = listed.find((p) => p.pid === pid);
    expect(entry).toMatchObject({ cmd: "/bin/bash", args: ["-l", "-c", "echo early; read line; echo got $line; sleep 1000"] });

    const attached = await sbx.commands.connect(pid);
    await eventually(() => attached.stdout.includes("early"));
    await sbx.commands.sendStdin(pid, "ping\n");
    await eventually(() => attached.stdout.includes("got ping") && handle.stdout.includes("got ping"));

    expect(await sbx.commands.kill(pid)).toBe(true);
    const result = await handle.wait();
    expect(result.exitCode).toBe(-1);
    expect((await attached.wait()).exitCode).toBe(-1);
    expect(await sbx.commands.kill(pid)).toBe(false);
    expect((await sbx.commands.list()).some((p) => p.pid === pid)).toBe(false);
  });

  it("kill() takes the children of a command with it", async () => {
    const handle = await sbx.commands.run("sleep 1000 & sleep 1000 & echo ready; wait", { background: true });
    await eventually(() => handle.stdout.includes("ready"));
    const members = await groupMembers(handle.pid);
    expect(members.length).toBeGreaterThanOrEqual(3);
    expect(await handle.kill()).toBe(true);
    await handle.wait();
    await eventually(async () => (await Promise.all(members.map(isRunning))).every((running) => !running));
  });
});

describe("sdk pty", () => {
  it("starts a terminal, takes input, resizes and is killed", async () => {
    let output = "";
    const terminal = await sbx.pty.start({
      size: { cols: 100, rows: 30 },
      onData: (data) => {
        output += decoder.decode(data);
      },
    });
    // The handle's pid getter throws until the start event has arrived.
    const pidOf = (): number => {
      try {
        return terminal.pid;
      } catch {
        return 0;
      }
    };
    await eventually(() => pidOf() > 0);
    await terminal.send("stty size\n");
    await eventually(() => output.includes("30 100"));
    await sbx.pty.resize(terminal.pid, { cols: 132, rows: 43 });
    await sbx.pty.sendInput(terminal.pid, new TextEncoder().encode("stty size; echo $TERM\n"));
    await eventually(() => output.includes("43 132") && output.includes("xterm-256color"));
    expect(await sbx.pty.kill(terminal.pid)).toBe(true);
    await terminal.wait().catch(() => undefined);
    expect(await sbx.pty.kill(terminal.pid)).toBe(false);
  });
});

describe("sdk processes", () => {
  it("starts with a tag, lists it, connects, feeds and signals it by tag", async () => {
    const events = sbx.processes.start({ cmd: "/bin/bash", args: ["-c", "echo hello; read line; echo bye $line"] }, { tag: "sdk-tagged" });
    const first = await events.next();
    expect(first.value).toMatchObject({ type: "start" });
    const pid = (first.value as { data: { pid: number } }).data.pid;

    const listed = await sbx.processes.list();
    expect(listed.find((p) => p.tag === "sdk-tagged")?.pid).toBe(pid);
    await expect(async () => {
      for await (const ev of sbx.processes.start({ cmd: "sleep", args: ["1"] }, { tag: "sdk-tagged" })) void ev;
    }).rejects.toThrow(/already_exists|already running/);

    const connected = sbx.processes.connect({ tag: "sdk-tagged" });
    const attachedStart = await connected.next();
    expect(attachedStart.value).toMatchObject({ type: "start", data: { pid } });
    await sbx.processes.sendInput({ tag: "sdk-tagged" }, "tagged\n");

    let stdout = "";
    let end: { exitCode?: number } | undefined;
    for await (const ev of connected) {
      if (ev.type === "data" && ev.data?.stdout) stdout += decoder.decode(ev.data.stdout);
      if (ev.type === "end") end = ev.data;
    }
    expect(stdout).toBe("hello\nbye tagged\n");
    expect(end?.exitCode).toBe(0);
    for await (const ev of events) void ev; // the starting stream ends too
  });

  it("signals by tag and resizes a tagged terminal", async () => {
    const terminal = sbx.processes.start(
      { cmd: "/bin/bash", args: ["-c", "read; stty size; sleep 1000"] },
      { tag: "sdk-pty", pty: { size: { cols: 90, rows: 20 } } },
    );
    await terminal.next();
    await sbx.processes.updatePty({ tag: "sdk-pty" }, { size: { cols: 91, rows: 21 } });
    await sbx.processes.sendPtyInput({ tag: "sdk-pty" }, "\r");
    let output = "";
    for await (const ev of terminal) {
      if (ev.type === "data" && ev.data?.pty) {
        output += decoder.decode(ev.data.pty);
        if (output.includes("21 91")) await sbx.processes.sendSignal({ tag: "sdk-pty" }, "SIGTERM");
      }
      if (ev.type === "end") expect(ev.data).toMatchObject({ exitCode: -1, status: "signal: terminated" });
    }
    expect(output).toContain("21 91");
    await expect(sbx.processes.sendSignal({ tag: "sdk-pty" }, "SIGKILL")).rejects.toThrow(/not found/);
  });
});
