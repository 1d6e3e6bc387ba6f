/**
 * The launcher every program starts through (native/launcher), run for real: it is the one in use
 * (not the Perl fallback), it closes what the agent leaves open, unseals the environment as the
 * whole environment, searches the unsealed PATH, and fails with setpriv's exit codes.
 */
import { spawnSync } from "node:child_process";
import { closeSync, openSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { launchAs } from "../../../src/user-spawn.js";
import { lookupUser } from "../../../src/users.js";

const root = lookupUser("root")!;

function run(args: readonly string[], env: Record<string, string>, stdio: (number | "pipe")[] = ["pipe", "pipe", "pipe"]) {
  const launch = launchAs(root, args[0]!, args.slice(1), { pty: false, env });
  const got = spawnSync(launch.file, [...launch.args], { env: launch.env, stdio, encoding: "utf8" });
  return { launch, status: got.status, stdout: got.stdout ?? "", stderr: got.stderr ?? "" };
}

describe("the launcher", () => {
  it("is the native one where every user may execute it", () => {
    const { launch } = run(["true"], { PATH: "/usr/bin:/bin" });
    expect(launch.file).toMatch(/native\/launcher\/build\/Release\/launcher$/);
  });

  it("hands the program the unsealed environment alone, and finds it on that PATH", () => {
    const got = run(["env"], { PATH: "/usr/bin:/bin", GREETING: "a=b c" });
    expect(got.status).toBe(0);
    expect(got.stdout.trim().split("\n").sort()).toEqual(["GREETING=a=b c", "PATH=/usr/bin:/bin"]);
  });

  it("closes every descriptor above stderr", () => {
    const extra = openSync("/dev/null", "r");
    try {
      const got = run(["ls", "/proc/self/fd"], { PATH: "/usr/bin:/bin" }, ["pipe", "pipe", "pipe", extra, extra]);
      // 0-2, and the descriptor ls reads the listing through.
      expect(got.stdout.trim().split(/\s+/).map(Number).sort()).toEqual([0, 1, 2, 3]);
    } finally {
      closeSync(extra);
    }
  });

  it("exits 127 for a program it cannot find, 126 for one it cannot execute", () => {
    const missing = run(["no-such-program-anywhere"], { PATH: "/usr/bin:/bin" });
    expect(missing.status).toBe(127);
    expect(missing.stderr).toContain("cannot execute no-such-program-anywhere");
    const notExecutable = join(tmpdir(), `launcher-test-${process.pid}`);
    writeFileSync(notExecutable, "data", { mode: 0o644 });
    try {
      expect(run([notExecutable], { PATH: "/usr/bin:/bin" }).status).toBe(126);
    } finally {
      unlinkSync(notExecutable);
    }
  });
});
