/**
 * How the agent starts programs for a caller, shared by processes and kernels: as that Linux user
 * (uid, gid and supplementary groups), with an environment built from scratch, and easier for the
 * OOM killer to pick than the agent.
 *
 * Node's own uid/gid options drop every supplementary group (libuv calls setgroups(0)), so a
 * privileged agent execs through util-linux's setpriv, which sets all three and then execs the
 * program: the pid we hand out is the program's own.
 */
import { accessSync, constants, writeFileSync } from "node:fs";
import { isPrivileged, lookupUser, userName, type User } from "./users.js";

/** Debian's PATH for a login shell, for an agent started without one. */
const FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Read once: the PATH the agent was started with is the image's, not something a request changes. */
const AGENT_PATH = process.env.PATH || FALLBACK_PATH;

/** The environment every program starts from: nothing of the agent's own (its token least of all). */
export function baseEnvironment(user: User): Record<string, string> {
  return {
    PATH: AGENT_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
    LANG: "C.UTF-8",
    // Our stdio pipes are socketpairs, and a non-interactive bash with a socket on stdin believes
    // rshd started it and sources ~/.bashrc, unless it is not the first shell level.
    SHLVL: "1",
  };
}

const SETPRIV_CANDIDATES = ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv", "/sbin/setpriv"];
let setprivPath: string | undefined | null = null;

function setpriv(): string | undefined {
  if (setprivPath === null) {
    setprivPath = SETPRIV_CANDIDATES.find((path) => {
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  }
  return setprivPath;
}

/** What to exec for a program: either the program itself, or setpriv in front of it. */
export interface Launch {
  readonly file: string;
  readonly args: readonly string[];
  /** Only when setpriv is missing: Node's uid/gid switch (supplementary groups are dropped). */
  readonly uid?: number;
  readonly gid?: number;
}

export class LaunchError extends Error {}

/**
 * The user a program really runs as. An agent without privileges cannot switch users, so its
 * programs run as the agent itself whoever the caller claims to be.
 */
export function effectiveUser(caller: User): User {
  const own = process.getuid?.();
  if (own === undefined || isPrivileged() || caller.uid === own) return caller;
  const self = lookupUser(userName(own));
  if (self !== undefined) return self;
  const gid = process.getgid?.() ?? own;
  return { name: String(own), uid: own, gid, home: process.env.HOME ?? "/", shell: "/bin/sh", groups: [gid] };
}

/**
 * Whether `caller` may see and control what runs as `owner` (its processes, its kernels): only the
 * same Linux user, that is the same uid, or root, who controls everything. The one rule for both.
 */
export function mayControl(caller: User, owner: User): boolean {
  return caller.uid === 0 || caller.uid === owner.uid;
}

export function launchAs(user: User, cmd: string, args: readonly string[], options: { readonly pty: boolean }): Launch {
  if (user.uid === process.getuid?.()) return { file: cmd, args };
  const wrapper = setpriv();
  if (wrapper !== undefined) {
    const groups = user.groups.length > 0 ? user.groups : [user.gid];
    return {
      file: wrapper,
      // --inh-caps=-all: nothing of root's capabilities may be regained through file capabilities.
      args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${groups.join(",")}`, "--inh-caps=-all", "--", cmd, ...args],
    };
  }
  // node-pty's own switch keeps root's supplementary groups: never run a terminal that way.
  if (options.pty) throw new LaunchError(`cannot start a terminal as ${user.name}: setpriv (util-linux) is not installed`);
  return { file: cmd, args, uid: user.uid, gid: user.gid };
}

/** spawn() options that carry a Launch's fallback uid/gid, when it has one. */
export function launchIds(launch: Launch): { uid?: number; gid?: number } {
  return { ...(launch.uid !== undefined ? { uid: launch.uid } : {}), ...(launch.gid !== undefined ? { gid: launch.gid } : {}) };
}

/** oom_score_adj for user programs: well above the agent's, so user code is killed first. */
export const CHILD_OOM_SCORE_ADJ = 500;

/**
 * Written synchronously right after spawn (a few microseconds), so that children the program
 * starts at once inherit the score. Best effort: not every machine has a writable /proc.
 */
export function raiseOomScore(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(CHILD_OOM_SCORE_ADJ));
  } catch {
    // no /proc, or not allowed: the score stays as inherited
  }
}
