/**
 * How the agent starts programs for a caller: as that Linux user (uid, gid and supplementary
 * groups), with an environment built from scratch, and easier for the OOM killer to pick than the
 * agent. Shared by processes and kernels.
 */
import { writeFile } from "node:fs/promises";
import { isPrivileged, type User } from "./users.js";

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The environment every program starts from: nothing inherited from the agent. */
export function baseEnvironment(user: User): Record<string, string> {
  return {
    PATH: DEFAULT_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
    LANG: "C.UTF-8",
  };
}

/**
 * The command line that runs `cmd args` as `user`. Node's own uid/gid options drop supplementary
 * groups, so a privileged agent execs through setpriv (util-linux), which keeps the pid.
 */
export function commandAsUser(user: User, cmd: string, args: readonly string[]): { cmd: string; args: string[] } {
  if (!isPrivileged() || user.uid === process.getuid?.()) return { cmd, args: [...args] };
  return {
    cmd: "setpriv",
    args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${user.groups.join(",")}`, "--", cmd, ...args],
  };
}

/** oom_score_adj for user programs: well above the agent's, so user code is killed first. */
export const CHILD_OOM_SCORE_ADJ = 500;

/** Best effort: not every machine lets us write it (no /proc, or restricted containers). */
export async function raiseOomScore(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  await writeFile(`/proc/${pid}/oom_score_adj`, String(CHILD_OOM_SCORE_ADJ)).catch(() => undefined);
}
