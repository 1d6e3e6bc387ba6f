/**
 * How the agent starts programs for a caller, shared by processes and kernels: as that Linux user
 * (uid, gid and supplementary groups), with an environment built from scratch, and easier for the
 * OOM killer to pick than the agent.
 *
 * Node's own uid/gid options drop every supplementary group (libuv calls setgroups(0)), so a
 * privileged agent execs through util-linux's setpriv, which sets all three and then execs the
 * program: the pid we hand out is the program's own.
 *
 * The caller's environment is for the program only. setpriv runs as root, and the dynamic loader
 * of a program running as root obeys LD_PRELOAD, LD_LIBRARY_PATH, GCONV_PATH and the like: given
 * the caller's variables, it would run the caller's own code as root before the switch. So what
 * runs before the switch gets the environment sealed, each variable carried as the value of a
 * SANDBOX_AGENT_ENV_<i> that nothing reads, and a few lines of Perl (perl-base is part of every
 * Debian system), already running as the user, unseal it and exec the program.
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
 * The launcher that runs just before the program. Arguments: `unseal`, the program, its arguments.
 * It makes the sealed environment the environment, then execs the program (searching PATH as
 * execvp does), or says why it could not with setpriv's exit codes.
 */
const LAUNCHER = `
my $mode = shift @ARGV;
if ($mode eq "unseal") {
  my @vars;
  for (my $i = 0; exists $ENV{"${SEALED_PREFIX}$i"}; $i++) { push @vars, $ENV{"${SEALED_PREFIX}$i"}; }
  %ENV = map { split /=/, $_, 2 } @vars;
}
exec { $ARGV[0] } @ARGV;
print STDERR "sandbox-agent: cannot execute $ARGV[0]: $!\n";
exit($! == 2 ? 127 : 126);
`;

/** The environment in the form that passes through root unread: see the top of this file. */
function seal(env: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([name, value], i) => [`${SEALED_PREFIX}${i}`, `${name}=${value}`]));
}

/** What to exec for a program: it or its launcher, with setpriv in front when the user changes. */
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

export function launchAs(user: User, cmd: string, args: readonly string[], options: LaunchOptions & { readonly env: Readonly<Record<string, string>> }): SealedLaunch;
export function launchAs(user: User, cmd: string, args: readonly string[], options: LaunchOptions): Launch;
export function launchAs(user: User, cmd: string, args: readonly string[], options: LaunchOptions): Launch {
  let file = cmd;
  let programArgs = args;
  let env: Record<string, string> | undefined;
  if (options.env !== undefined) {
    const launcher = perl();
    if (launcher === undefined) throw new LaunchError("cannot start programs: perl (Debian's perl-base) is not installed, and they start through it");
    env = seal(options.env);
    // "--" ends perl's own options: the program's name may start with a dash.
    [file, programArgs] = [launcher, ["-e", LAUNCHER, "--", "unseal", cmd, ...args]];
  }
  if (user.uid === process.getuid?.()) return { file, args: programArgs, env };
  const wrapper = setpriv();
  if (wrapper !== undefined) {
    const groups = user.groups.length > 0 ? user.groups : [user.gid];
    return {
      file: wrapper,
      // --inh-caps=-all: nothing of root's capabilities may be regained through file capabilities.
      args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${groups.join(",")}`, "--inh-caps=-all", "--", file, ...programArgs],
      env,
    };
  }
  // node-pty's own switch keeps root's supplementary groups: never run a terminal that way.
  if (options.pty) throw new LaunchError(`cannot start a terminal as ${user.name}: setpriv (util-linux) is not installed`);
  return { file, args: programArgs, env, uid: user.uid, gid: user.gid };
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
