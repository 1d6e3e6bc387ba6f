/**
 * native/child-fds spawn(): what the fork thread starts pipe children with (fork-worker.mjs). The
 * child must get what libuv's spawn() gave it: its own session and group, every signal at its
 * default and none blocked (Node ignores SIGPIPE), the given stdio, directory and environment, and
 * clear errors; and it is nobody's to reap but reap()'s caller.
 */
import { createRequire } from "node:module";
import { Socket } from "node:net";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { closeQuietly, reap, socketpair } from "../../../src/supervisor/child-fds.js";
import { eventually } from "../../helpers/agent.js";

interface Spawn {
  spawn(file: string, argv: string[], envp: string[], cwd: string, stdio: [number, number, number]): number;
}
const native = createRequire(import.meta.url)("../../../native/child-fds/build/Release/child_fds.node") as Spawn;

const LAUNCHER = fileURLToPath(new URL("../../../native/launcher/build/Release/launcher", import.meta.url));
const PERL_LAUNCHER = readFileSync(new URL("../../../src/programs/launcher.pl", import.meta.url), "utf8");

/** How each launcher is started, as user-spawn.ts starts it: [file, ...argv before the program]. */
const LAUNCHERS = {
  native: [LAUNCHER, LAUNCHER, "keep"],
  perl: ["/usr/bin/perl", "perl", "-e", PERL_LAUNCHER, "--", "keep"],
} as const;

/**
 * Runs `script` (through a launcher, as the agent runs every program, when asked) with its stdout
 * on a socketpair; resolves with what it printed and how it ended.
 */
async function run(
  script: string,
  options: { cwd?: string; env?: string[]; launcher?: keyof typeof LAUNCHERS } = {},
): Promise<{ out: string; exit: { code: number; signal: number } }> {
  const [ours, theirs] = socketpair();
  const [file, ...argv] = options.launcher !== undefined ? [...LAUNCHERS[options.launcher], "/bin/sh", "-c", script] : ["/bin/sh", "sh", "-c", script];
  let pid: number;
  try {
    pid = native.spawn(file!, argv, options.env ?? ["PATH=/usr/bin:/bin"], options.cwd ?? "/", [-1, theirs, -1]);
  } finally {
    closeQuietly(theirs);
  }
  const socket = new Socket({ fd: ours, readable: true, writable: false });
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  await new Promise((resolve) => socket.once("close", resolve));
  const exit = (await eventually(() => reap(pid)))!;
  return { out: Buffer.concat(chunks).toString(), exit };
}

describe("posix_spawn through child-fds", () => {
  it("starts the child as the leader of a new session, with the given stdio, directory and environment", async () => {
    const { out, exit } = await run('echo "$$ $(cut -d" " -f6 /proc/$$/stat) $(cut -d" " -f5 /proc/$$/stat)"; pwd; env; read line || echo "stdin at EOF"', {
      cwd: "/tmp",
      env: ["PATH=/usr/bin:/bin", "ONLY=this"],
    });
    const [ids, cwd, ...rest] = out.trim().split("\n");
    const [pid, sid, pgid] = ids!.split(" ").map(Number);
    expect(sid).toBe(pid);
    expect(pgid).toBe(pid);
    expect(cwd).toBe("/tmp");
    expect(rest.filter((line) => line.startsWith("ONLY=") || line.startsWith("PATH="))).toEqual(["PATH=/usr/bin:/bin", "ONLY=this"]);
    expect(rest.at(-1)).toBe("stdin at EOF");
    expect(exit).toEqual({ code: 0, signal: -1 });
  });

  it("resets every signal to its default and blocks none, though Node ignores SIGPIPE (with either launcher: glibc's too)", async () => {
    expect(readFileSync("/proc/self/status", "utf8")).toMatch(/SigIgn:\s*0*[1-9a-f]/);
    // Read by the shell's builtins: a command it forks would show its mask while forking (dash
    // blocks every signal around its vfork).
    const sigLines = 'while read -r line; do case "$line" in SigBlk:*|SigIgn:*) echo "$line";; esac; done < /proc/$$/status';
    // glibc's posix_spawn leaves its own two signals (32, 33) ignored where the parent handles
    // them; the launcher, which every program goes through, resets them.
    for (const launcher of ["native", "perl"] as const) {
      const { out } = await run(sigLines, { launcher });
      expect(out, launcher).toMatch(/SigBlk:\s*0+\n/);
      expect(out, launcher).toMatch(/SigIgn:\s*0+\n/);
    }
  });

  it("reports how the child ended: its code, or the signal that killed it", async () => {
    expect((await run("exit 7")).exit).toEqual({ code: 7, signal: -1 });
    expect((await run("kill -TERM $$")).exit).toEqual({ code: -1, signal: 15 });
  });

  it("refuses a missing directory or program, or a file that is not executable, with the errno's name; stdio below 3 and strings with a NUL", () => {
    const start =
      (file: string, cwd: string, stdio: [number, number, number] = [-1, -1, -1]) =>
      () =>
        native.spawn(file, [file], [], cwd, stdio);
    const plain = join(tmpdir(), `posix-spawn-test-${process.pid}`);
    writeFileSync(plain, "#!/bin/sh\n", { mode: 0o644 });
    try {
      expect(start("/bin/true", "/nonexistent")).toThrow(expect.objectContaining({ code: "ENOENT" }));
      expect(start("/nonexistent/program", "/")).toThrow(expect.objectContaining({ code: "ENOENT" }));
      expect(start(plain, "/")).toThrow(expect.objectContaining({ code: "EACCES" }));
      expect(start("/bin/true", "/", [0, -1, -1])).toThrow(/stdio below 3/);
      // C would cut a string at its NUL and run something else than asked.
      expect(start("/bin/true\0 --other", "/")).toThrow(/spawn \(file\)/);
      expect(() => native.spawn("/bin/true", ["/bin/true", "a\0b"], [], "/", [-1, -1, -1])).toThrow(/argv or envp/);
      expect(() => native.spawn("/bin/true", ["/bin/true"], ["A=1\0B=2"], "/", [-1, -1, -1])).toThrow(/argv or envp/);
    } finally {
      rmSync(plain);
    }
  });
});
