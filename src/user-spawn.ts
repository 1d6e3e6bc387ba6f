/**
 * How the agent starts programs for a caller, shared by processes and kernels: as that Linux user
 * (uid, gid and supplementary groups), with an environment built from scratch, and easier for the
 * OOM killer to pick than the agent.
 *
 * Node's own uid/gid options drop every supplementary group (libuv calls setgroups(0)), so a
 * privileged agent execs through util-linux's setpriv, which sets all three and then execs the
 * program: the pid we hand out is the program's own.
 *
 * Every program starts through the launcher (native/launcher, a few lines of C), which first closes every descriptor above stderr: node-pty's forkpty() closes nothing
 * in the child, and the master side of each terminal the agent holds is open without close-on-exec,
 * so without it every process inherited the terminals of all the others (root's shell included),
 * and whatever descriptors a native addon, or the agent's own parent, left inheritable. When the
 * user changes, the launcher runs as root, before setpriv: a process that has switched to the user
 * can be read by that user's other processes (/proc/<pid>/fd, pidfd_getfd) from the moment it
 * execs, and must hold nothing by then.
 *
 * The caller's environment is for the program only. setpriv and the launcher before it run as
 * root, and the dynamic loader of a program running as root obeys LD_PRELOAD, LD_LIBRARY_PATH,
 * GCONV_PATH and the like (Perl obeys PERL5OPT): given the caller's variables, they would run the
 * caller's own code as root before the switch. So what runs before the switch gets the environment
 * sealed, each variable carried as the value of a SANDBOX_AGENT_ENV_<i> that nothing reads, and
 * the launcher, run again by setpriv as the user, unseals it and execs the program.
 */
import { accessSync, constants, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
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

/** The first of `candidates` that can be executed, looked up once. */
function firstExecutable(candidates: readonly string[]): () => string | undefined {
  let found: string | undefined | null = null;
  return () => {
    if (found === null) {
      found = candidates.find((path) => {
        try {
          accessSync(path, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
    }
    return found;
  };
}

const setpriv = firstExecutable(["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv", "/sbin/setpriv"]);
const perl = firstExecutable(["/usr/bin/perl", "/bin/perl"]);

const SEALED_PREFIX = "SANDBOX_AGENT_ENV_";

/**
 * The launcher. Arguments: `keep` or `unseal`, the program, its arguments. It closes every
 * descriptor above 2 (close_range(2): Linux 5.9+, number 436 on every architecture; else each one
 * /proc/self/fd lists, and a launcher that can do neither stops there), with `unseal` makes the
 * sealed environment the environment, then execs the program (searching PATH as execvp does), or
 * says why it could not with setpriv's exit codes.
 *
 * It is a small executable (native/launcher): a Perl interpreter starting first cost 1.6 ms of
 * every process start. Its second run, after setpriv, is as the program's user, who must be able
 * to execute it: an install where some directory on its path is closed to others (an agent built
 * under /root) runs the same steps in Perl instead (programs/launcher.pl, handed to perl with -e,
 * so its file need not be readable).
 */
const NATIVE_LAUNCHER = fileURLToPath(new URL("../native/launcher/build/Release/launcher", import.meta.url));

/** Whether every user may execute `path`: the file and each directory above it open to others. */
function executableByAll(path: string): boolean {
  try {
    for (let at = path; ; at = dirname(at)) {
      if ((statSync(at).mode & constants.S_IXOTH) === 0) return false;
      if (at === dirname(at)) return true;
    }
  } catch {
    return false;
  }
}

/** How the launcher runs: its file, and the arguments that come before `keep`/`unseal`. */
interface LauncherCommand {
  readonly file: string;
  readonly prefix: readonly string[];
}

/** Decided on first use; undefined (no launcher at all) is asked again, it fails every start. */
let launcherCommand: LauncherCommand | undefined;

function launcher(): LauncherCommand | undefined {
  launcherCommand ??= executableByAll(NATIVE_LAUNCHER) ? { file: NATIVE_LAUNCHER, prefix: [] } : perlLauncher();
  return launcherCommand;
}

function perlLauncher(): LauncherCommand | undefined {
  const interpreter = perl();
  // "--" ends perl's own options: the program's name may start with a dash.
  if (interpreter === undefined) return undefined;
  const script = readFileSync(new URL("./programs/launcher.pl", import.meta.url), "utf8");
  return { file: interpreter, prefix: ["-e", script, "--"] };
}

/** The environment in the form that passes through root unread: see the top of this file. */
function seal(env: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([name, value], i) => [`${SEALED_PREFIX}${i}`, `${name}=${value}`]));
}

/** What to exec for a program: the launcher, and setpriv after it when the user changes. */
export interface Launch {
  readonly file: string;
  readonly args: readonly string[];
  /** The environment to give spawn (when launchAs was given the program's): the sealed one. */
  readonly env?: Readonly<Record<string, string>>;
  /** Only when setpriv is missing: Node's uid/gid switch (supplementary groups are dropped). */
  readonly uid?: number;
  readonly gid?: number;
}

/** A launch that carries the program's environment. */
export type SealedLaunch = Launch & { readonly env: Readonly<Record<string, string>> };

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

export interface LaunchOptions {
  readonly pty: boolean;
  /**
   * The program's environment. Give it whenever any of it comes from a caller: it then reaches
   * the program alone, and spawn is given launch.env. Without it, spawn's environment passes to
   * everything on the way, setpriv included (kernels, whose environment is the agent's making).
   */
  readonly env?: Readonly<Record<string, string>>;
}

export function launchAs(
  user: User,
  cmd: string,
  args: readonly string[],
  options: LaunchOptions & { readonly env: Readonly<Record<string, string>> },
): SealedLaunch;
export function launchAs(user: User, cmd: string, args: readonly string[], options: LaunchOptions): Launch;
export function launchAs(user: User, cmd: string, args: readonly string[], options: LaunchOptions): Launch {
  const command = launcher();
  if (command === undefined) {
    throw new LaunchError(
      "cannot start programs: the launcher (native/launcher) is not built or not executable by every user, and perl (Debian's perl-base) is not installed",
    );
  }
  const { file: launcherFile } = command;
  const env = options.env === undefined ? undefined : seal(options.env);
  const through = (mode: "keep" | "unseal", program: readonly string[]): string[] => [...command.prefix, mode, ...program];
  // One launcher that does everything, for a program that starts as the agent's own user.
  const direct = through(env === undefined ? "keep" : "unseal", [cmd, ...args]);
  if (user.uid === process.getuid?.()) return { file: launcherFile, args: direct, env };
  const wrapper = setpriv();
  if (wrapper !== undefined) {
    const groups = user.groups.length > 0 ? user.groups : [user.gid];
    // --inh-caps=-all: nothing of root's capabilities may be regained through file capabilities.
    const switchUser = [wrapper, `--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${groups.join(",")}`, "--inh-caps=-all", "--"];
    const program = env === undefined ? [cmd, ...args] : [launcherFile, ...through("unseal", [cmd, ...args])];
    return { file: launcherFile, args: through("keep", [...switchUser, ...program]), env };
  }
  // node-pty's own switch keeps root's supplementary groups: never run a terminal that way.
  if (options.pty) throw new LaunchError(`cannot start a terminal as ${user.name}: setpriv (util-linux) is not installed`);
  // libuv switches before the exec, so here the launcher closes the descriptors as the user.
  return { file: launcherFile, args: direct, env, uid: user.uid, gid: user.gid };
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
