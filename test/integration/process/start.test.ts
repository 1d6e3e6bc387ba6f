import { Code, ConnectError } from "@connectrpc/connect";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { posix } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Process as EnvdProcess } from "../../../src/gen/process/process_pb.js";
import { Process } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, TRANSPORT_NAMES, client, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { collect, groupMembers, isRunning } from "../../helpers/process.js";

let agent: TestAgent;
beforeAll(async () => {
  // The agent runs in this process: anything in our environment must stay out of its children's.
  process.env.AGENT_TEST_LEAK_CANARY = "do-not-inherit";
  agent = await startTestAgent();
});
afterAll(async () => {
  await agent?.close();
  delete process.env.AGENT_TEST_LEAK_CANARY;
});

const sh = (script: string) => ({ process: { cmd: "/bin/bash", args: ["-c", script], envs: {} } });

describe.each(TRANSPORT_NAMES)("Start over %s", (transport) => {
  it("sends start{pid} first, keeps stdout and stderr apart, and ends with the exit status", async () => {
    const c = client(Process, agent.url, transport);
    const got = await collect(c.start(sh("echo out; echo err >&2; exit 3"), { headers: AUTH }));
    expect(got.error).toBeUndefined();
    expect(got.kinds[0]).toBe("start");
    expect(got.pid).toBeGreaterThan(0);
    expect(got.stdout.toString()).toBe("out\n");
    expect(got.stderr.toString()).toBe("err\n");
    expect(got.kinds.at(-1)).toBe("end");
    expect(got.end).toMatchObject({ exitCode: 3, exited: true, status: "exit status 3" });
    expect(got.end?.error).toBeUndefined();
  });

  it("delivers large output on both streams byte for byte, and replays it to a client that attaches", async () => {
    const dir = await tempDir();
    try {
      // Random bytes: every byte value, and UTF-8 sequences cut anywhere.
      const out = randomBytes(700_000);
      const err = randomBytes(300_000);
      await writeFile(posix.join(dir.path, "out"), out);
      await writeFile(posix.join(dir.path, "err"), err);
      const c = client(Process, agent.url, transport);
      const got = await collect(c.start(sh(`cat ${dir.path}/out; cat ${dir.path}/err >&2`), { headers: AUTH }));
      expect(got.error).toBeUndefined();
      expect(got.stdout.equals(out)).toBe(true);
      expect(got.stderr.equals(err)).toBe(true);
      expect(got.end).toMatchObject({ exitCode: 0 });
      const replayed = await collect(c.connect({ process: { selector: { case: "pid", value: got.pid! } } }, { headers: AUTH }));
      expect(replayed.error).toBeUndefined();
      expect(Buffer.concat([replayed.stdout, replayed.stderr]).length).toBe(out.length + err.length);
      expect(replayed.stdout.equals(out)).toBe(true);
      expect(replayed.stderr.equals(err)).toBe(true);
      expect(replayed.end).toMatchObject({ exitCode: 0 });
    } finally {
      await dir.cleanup();
    }
  });
});

describe.each(["connect-binary-h1", "grpc"] as const)("envd's Start over %s", (transport) => {
  it("delivers large output byte for byte (the same frames as the agent's own face)", async () => {
    const c = client(EnvdProcess, agent.url, transport);
    const out = randomBytes(300_000);
    const dir = await tempDir();
    try {
      await writeFile(posix.join(dir.path, "out"), out);
      const stdout: Uint8Array[] = [];
      let end: unknown;
      for await (const res of c.start(sh(`cat ${dir.path}/out`), { headers: AUTH })) {
        const event = res.event?.event;
        if (event?.case === "data" && event.value.output.case === "stdout") stdout.push(event.value.output.value);
        if (event?.case === "end") end = event.value;
      }
      expect(Buffer.concat(stdout).equals(out)).toBe(true);
      expect(end).toMatchObject({ exitCode: 0, exited: true });
    } finally {
      await dir.cleanup();
    }
  });
});

describe("Start", () => {
  const c = () => client(Process, agent.url, "connect-h2");

  it("reports a process killed by a signal with exit code -1 and Go's wording", async () => {
    const got = await collect(c().start(sh("kill -TERM $$"), { headers: AUTH }));
    expect(got.end).toMatchObject({ exitCode: -1, exited: false, status: "signal: terminated" });
  });

  it("refuses a missing program with a clear error instead of a stream that never ends", async () => {
    const got = await collect(c().start({ process: { cmd: "definitely-not-a-program", args: [], envs: {} } }, { headers: AUTH }));
    expect(got.kinds).toEqual([]);
    expect(got.error).toBeInstanceOf(ConnectError);
    expect((got.error as ConnectError).code).toBe(Code.NotFound);
    expect((got.error as ConnectError).rawMessage).toBe('exec: "definitely-not-a-program": executable file not found in $PATH');
  });

  it("refuses a missing path, a file without execute permission and a directory", async () => {
    const dir = await tempDir();
    try {
      const plain = posix.join(dir.path, "plain.txt");
      await writeFile(plain, "not a program", { mode: 0o644 });
      const cases = [
        { cmd: "./nope", code: Code.NotFound, message: "no such file or directory" },
        { cmd: plain, code: Code.PermissionDenied, message: "permission denied" },
        { cmd: "/tmp", code: Code.InvalidArgument, message: "is a directory" },
      ];
      for (const { cmd, code, message } of cases) {
        const got = await collect(c().start({ process: { cmd, args: [], envs: {} } }, { headers: AUTH }));
        expect(got.kinds, cmd).toEqual([]);
        expect((got.error as ConnectError).code, cmd).toBe(code);
        expect((got.error as ConnectError).rawMessage, cmd).toContain(message);
      }
    } finally {
      await dir.cleanup();
    }
  });

  it("refuses an argument list larger than the kernel takes", async () => {
    const got = await collect(c().start({ process: { cmd: "echo", args: ["x".repeat(300_000)], envs: {} } }, { headers: AUTH }));
    expect(got.kinds).toEqual([]);
    expect((got.error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((got.error as ConnectError).rawMessage).toContain("argument list too long");
  });

  it("refuses a missing working directory with invalid_argument before any event", async () => {
    const got = await collect(c().start({ process: { cmd: "pwd", args: [], envs: {}, cwd: "/no/such/dir" } }, { headers: AUTH }));
    expect(got.kinds).toEqual([]);
    expect((got.error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((got.error as ConnectError).rawMessage).toContain("/no/such/dir");
  });

  it("resolves ~ and relative working directories against the user's home", async () => {
    const dir = await tempDir();
    try {
      const home = (await collect(c().start({ process: { cmd: "pwd", args: [], envs: {}, cwd: "~" } }, { headers: AUTH }))).stdout.toString();
      expect(home).toBe("/root\n");
      const relative = posix.relative("/root", dir.path);
      const got = await collect(c().start({ process: { cmd: "pwd", args: [], envs: {}, cwd: relative } }, { headers: AUTH }));
      expect(got.stdout.toString()).toBe(`${dir.path}\n`);
      const none = await collect(c().start({ process: { cmd: "pwd", args: [], envs: {} } }, { headers: AUTH }));
      expect(none.stdout.toString()).toBe("/root\n");
    } finally {
      await dir.cleanup();
    }
  });

  it("builds the environment from scratch, with the request's variables last", async () => {
    const got = await collect(c().start({ process: { cmd: "env", args: [], envs: { FOO: "bar baz", LANG: "en_US.UTF-8" } } }, { headers: AUTH }));
    const env = new Map(
      got.stdout
        .toString()
        .trim()
        .split("\n")
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    expect(env.get("HOME")).toBe("/root");
    expect(env.get("USER")).toBe("root");
    expect(env.get("LOGNAME")).toBe("root");
    expect(env.get("SHELL")).toBe("/bin/bash");
    expect(env.get("PATH")).toContain("/usr/bin");
    expect(env.get("FOO")).toBe("bar baz");
    expect(env.get("LANG")).toBe("en_US.UTF-8");
    expect(env.has("AGENT_TEST_LEAK_CANARY")).toBe(false);
    expect(env.has("VITEST")).toBe(false);
    expect(env.has("TERM")).toBe(false);
    const plain = await collect(c().start({ process: { cmd: "printenv", args: ["LANG"], envs: {} } }, { headers: AUTH }));
    expect(plain.stdout.toString()).toBe("C.UTF-8\n");
  });

  it("runs as the caller's user", async () => {
    const got = await collect(c().start(sh("id -u; id -g; id -G; echo $HOME $USER; pwd"), { headers: { ...AUTH, "x-user": "nobody" } }));
    // nobody's home does not exist: with no cwd asked for, the process starts in /.
    expect(got.stdout.toString()).toBe("65534\n65534\n65534\n/nonexistent nobody\n/\n");
  });

  it("runs as the caller's user with every supplementary group", async () => {
    let hasUseradd = true;
    try {
      execFileSync("which", ["useradd"]);
    } catch {
      hasUseradd = false;
    }
    // Without useradd, daemon (uid 1, group daemon) still shows that the primary group is set.
    if (!hasUseradd) {
      const got = await collect(c().start({ process: { cmd: "id", args: [], envs: {} } }, { headers: { ...AUTH, "x-user": "daemon" } }));
      expect(got.stdout.toString()).toContain("uid=1(daemon) gid=1(daemon) groups=1(daemon)");
      return;
    }
    const name = `ptest${process.pid}`;
    execFileSync("useradd", ["--no-create-home", "--shell", "/bin/sh", "--groups", "audio,video", name]);
    try {
      const got = await collect(c().start(sh("id -un; id -Gn | tr ' ' '\\n' | sort | tr '\\n' ' '"), { headers: { ...AUTH, "x-user": name } }));
      const [user, groups] = got.stdout.toString().split("\n");
      expect(user).toBe(name);
      expect(groups?.trim().split(" ")).toEqual(expect.arrayContaining(["audio", "video"]));
      expect(groups).not.toContain("root");
    } finally {
      execFileSync("userdel", [name]);
    }
  });

  it("coalesces a flood of tiny writes into few frames, in order", async () => {
    const got = await collect(c().start(sh("for i in $(seq 1 3000); do echo $i; done"), { headers: AUTH }));
    const expected = Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join("");
    expect(got.stdout.toString()).toBe(expected);
    // bash writes each echo on its own; one frame per write would be 3000 frames.
    expect(got.frames.length).toBeLessThan(300);
  });

  it("keeps each stream's order when stdout and stderr interleave", async () => {
    const got = await collect(c().start(sh("for i in $(seq 1 200); do echo o$i; echo e$i >&2; done"), { headers: AUTH }));
    expect(got.stdout.toString()).toBe(Array.from({ length: 200 }, (_, i) => `o${i + 1}\n`).join(""));
    expect(got.stderr.toString()).toBe(Array.from({ length: 200 }, (_, i) => `e${i + 1}\n`).join(""));
  });

  it("delivers UTF-8 split across writes byte for byte, never ending a frame inside a character", async () => {
    // Every byte is its own write, 20 ms apart: longer than the coalescing window.
    const script = 'for c in 1 2 3 4; do for b in e2 82 ac f0 9f 98 80; do printf "\\\\x$b"; sleep 0.02; done; done';
    const got = await collect(c().start(sh(script), { headers: AUTH }));
    expect(got.stdout.toString("utf8")).toBe("€😀".repeat(4));
    const strict = new TextDecoder("utf-8", { fatal: true });
    for (const frame of got.frames) expect(() => strict.decode(frame.data)).not.toThrow();
  });

  it("passes bytes that are not UTF-8 through unchanged", async () => {
    const got = await collect(c().start(sh("printf '\\xff\\xfe\\x00\\xe2\\x82'"), { headers: AUTH }));
    expect([...got.stdout]).toEqual([0xff, 0xfe, 0x00, 0xe2, 0x82]);
  });

  it("sends keepalives at the client's Keepalive-Ping-Interval", async () => {
    const got = await collect(c().start(sh("sleep 2.5; echo done"), { headers: { ...AUTH, "keepalive-ping-interval": "1" } }));
    expect(got.kinds[0]).toBe("start");
    expect(got.kinds.filter((kind) => kind === "keepalive").length).toBeGreaterThanOrEqual(1);
    expect(got.stdout.toString()).toBe("done\n");
    expect(got.kinds.at(-1)).toBe("end");
  });

  it("kills the whole process group when Connect-Timeout-Ms passes and ends with the end event", async () => {
    // The header alone, without a client-side deadline: the agent has to end the stream itself.
    const stream = c().start(sh("sleep 30 & sleep 30 & echo ready; wait"), { headers: { ...AUTH, "connect-timeout-ms": "1500" } });
    let members: number[] = [];
    let looked = false;
    const got = await collect(stream, (so) => {
      if (!looked && so.stdout.toString() === "ready\n") {
        looked = true;
        void groupMembers(so.pid!).then((m) => (members = m));
      }
    });
    expect(got.end).toMatchObject({ exitCode: -1, exited: false, status: "signal: killed" });
    expect(got.end?.error).toContain("time limit");
    expect((got.error as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(members.length).toBeGreaterThanOrEqual(2);
    // The sleeps were reparented to init when bash died: dead, whoever reaps them.
    await eventually(async () => {
      const alive = await Promise.all([...members, ...(await groupMembers(got.pid!))].map(isRunning));
      return alive.every((running) => !running);
    });
  });

  it("kills the command at the client's own deadline too (timeoutMs)", async () => {
    let pid: number | undefined;
    const got = await collect(c().start(sh("sleep 30"), { headers: AUTH, timeoutMs: 1000 }), (so) => (pid = so.pid));
    expect((got.error as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(pid).toBeDefined();
    await eventually(async () => !(await isRunning(pid!)));
  });

  it("does not kill the process when the client goes away", async () => {
    const abort = new AbortController();
    let pid: number | undefined;
    await collect(c().start(sh("sleep 30"), { headers: AUTH, signal: abort.signal }), (so) => {
      pid = so.pid;
      abort.abort();
    });
    expect(pid).toBeDefined();
    const list = await c().list({}, { headers: AUTH });
    expect(list.processes.map((p) => p.pid)).toContain(pid);
    expect(await isRunning(pid!)).toBe(true);
    await c().sendSignal({ process: { selector: { case: "pid", value: pid! } }, signal: 9 }, { headers: AUTH });
    await eventually(async () => !(await isRunning(pid!)));
  });

  it("does not wait for a background grandchild that keeps the pipes open", async () => {
    const got = await collect(c().start(sh("sleep 30 & echo started"), { headers: AUTH }));
    expect(got.stdout.toString()).toBe("started\n");
    expect(got.end).toMatchObject({ exitCode: 0, status: "exit status 0" });
    const leftovers = await groupMembers(got.pid!);
    for (const pid of leftovers) process.kill(pid, "SIGKILL");
  });

  it("sets the children's OOM score above the agent's", async () => {
    // One read: cat reads twice, and a score written between its reads gives "0\n" then the
    // tail of "500\n" from offset 2, "0\n0\n" (procfs; found under load).
    const once = { cmd: "dd", args: ["if=/proc/self/oom_score_adj", "bs=64", "count=1", "status=none"], envs: {} };
    const got = await collect(c().start({ process: once }, { headers: AUTH }));
    // Written right after the spawn: a process this short may have read its value first.
    expect(["0\n", "500\n"]).toContain(got.stdout.toString());
    const running = await collect(c().start(sh("sleep 0.3; cat /proc/self/oom_score_adj"), { headers: AUTH }));
    expect(running.stdout.toString()).toBe("500\n");
  });

  it("refuses a working directory that is a file with invalid_argument", async () => {
    const got = await collect(c().start({ process: { cmd: "pwd", args: [], envs: {}, cwd: "/etc/hostname" } }, { headers: AUTH }));
    expect((got.error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((got.error as ConnectError).rawMessage).toContain("not a directory");
  });
});
