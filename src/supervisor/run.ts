/**
 * A program the agent runs for itself to its end, collecting what it says (javac compiling the
 * jshell launcher): through the supervisor like every child, as the agent's own user, with a base
 * environment and never the agent's own (its token least of all).
 */
import { baseEnvironment, launchAs } from "../user-spawn.js";
import { lookupUser, userName, type User } from "../users.js";
import type { Exit } from "./child.js";
import { supervise } from "./supervisor.js";

export interface Ran {
  readonly exit: Exit;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

function agentUser(): User {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? uid;
  return lookupUser(userName(uid)) ?? { name: String(uid), uid, gid, home: process.env.HOME ?? "/", shell: "/bin/sh", groups: [gid] };
}

export async function runToEnd(cmd: string, args: readonly string[], options: { readonly cwd: string; readonly timeoutMs: number }): Promise<Ran> {
  const user = agentUser();
  const env = baseEnvironment(user);
  const launch = launchAs(user, cmd, args, { pty: false, env });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const child = await supervise(
    { cmd, launch, env: launch.env, cwd: options.cwd, io: { kind: "pipes", stdin: false }, killGroupOnExit: true },
    { onOutput: (stream, chunk) => (stream === "stderr" ? err : out).push(chunk), onExit: () => {} },
  );
  child.limitTime(options.timeoutMs);
  const exit = await child.exited;
  return { exit, timedOut: child.timedOut, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}
