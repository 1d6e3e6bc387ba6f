/**
 * Real unprivileged Linux users for attack tests (the attacker model U): created once
 * with `useradd` and kept, so test files that run side by side can share them. Creation is
 * idempotent and tolerates another test file creating the same user at the same moment.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { lookupUser, type User } from "../../src/users.js";

/** The users attack tests act as; each has its own group and a 0700 home directory. */
export const ATTACKER = "sa-mallory";
export const VICTIM = "sa-alice";

function exists(name: string): boolean {
  try {
    execFileSync("id", ["-u", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Makes sure `name` exists with a home of its own (mode 0700), and returns it as the agent sees it. */
export function ensureUser(name: string): User {
  if (process.getuid?.() !== 0) throw new Error("attack tests need root: they create real users with useradd");
  if (!exists(name)) {
    try {
      execFileSync("useradd", ["--create-home", "--shell", "/bin/sh", "--user-group", name], { stdio: "pipe" });
    } catch (err) {
      // Another test file may have created it between our check and useradd.
      if (!exists(name)) throw err;
    }
  }
  const user = lookupUser(name);
  if (user === undefined) throw new Error(`user ${name} exists but the agent's user table does not have it`);
  execFileSync("chmod", ["0700", user.home]);
  return user;
}

/** Runs a command as `user` (the way that user's own code inside the sandbox would act). */
export function runAs(user: User, command: string): string {
  return execFileSync("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", "sh", "-c", command], {
    encoding: "utf8",
    env: { PATH: "/usr/bin:/bin", HOME: user.home },
  });
}

/**
 * Starts `argv` as `user` without waiting for it, stdio piped: for an attacker that must act while
 * the in-process agent goes on serving (runAs would block its event loop).
 */
export function spawnAs(user: User, argv: readonly string[]): ChildProcessWithoutNullStreams {
  return spawn("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...argv], {
    env: { PATH: "/usr/bin:/bin", HOME: user.home },
    stdio: ["pipe", "pipe", "pipe"],
  });
}
