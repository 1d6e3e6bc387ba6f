/**
 * A Start request turned into something that can be spawned, with every check that can fail done
 * first: a bad request is refused before any event is sent and before anything runs.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { stat } from "node:fs/promises";
import { ProcessConfigSchema, type StartRequest } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, invalidPath } from "../../errors.js";
import { resolvePath } from "../../paths.js";
import type { SandboxSettings } from "../../sandbox-settings.js";
import type { User } from "../../users.js";
import { LaunchError, launchAs } from "../../user-spawn.js";
import { environmentProblem } from "../../env-vars.js";
import { buildEnvironment } from "./environment.js";
import { checkExecutable, SpawnError } from "./executable.js";
import { DEFAULT_PTY_COLS, DEFAULT_PTY_ROWS, MAX_PTY_SIDE } from "./limits.js";
import type { ProcessPlan } from "./managed-process.js";

async function workingDirectory(requested: string | undefined, user: User, defaultWorkdir: string | undefined): Promise<string> {
  let dir: string;
  try {
    dir = resolvePath(requested ?? defaultWorkdir ?? "", user);
  } catch (err) {
    throw invalidPath(err);
  }
  try {
    const st = await stat(dir);
    if (st.isDirectory()) return dir;
    throw new ConnectError(`invalid working directory ${dir}: not a directory`, Code.InvalidArgument);
  } catch (err) {
    if (err instanceof ConnectError) throw err;
    // Users without a home (nobody's is /nonexistent) still run commands when they name no cwd.
    if (requested === undefined && errnoOf(err) === "ENOENT") return defaultWorkdir === undefined ? "/" : workingDirectory(undefined, user, undefined);
    const reason = errnoOf(err) === "ENOENT" ? "no such file or directory" : (err as Error).message;
    throw new ConnectError(`invalid working directory ${dir}: ${reason}`, Code.InvalidArgument);
  }
}

function terminalSize(req: StartRequest): { cols: number; rows: number } | undefined {
  if (req.pty === undefined) return undefined;
  const cols = req.pty.size?.cols || DEFAULT_PTY_COLS;
  const rows = req.pty.size?.rows || DEFAULT_PTY_ROWS;
  if (cols > MAX_PTY_SIDE || rows > MAX_PTY_SIDE) {
    throw new ConnectError(`terminal size ${cols}x${rows} is too large`, Code.InvalidArgument);
  }
  return { cols, rows };
}

/** Plans `req` to run as `user` (the acting user of owner.ts, who will own the process). */
export async function planStart(req: StartRequest, user: User, settings: SandboxSettings): Promise<ProcessPlan> {
  const config = req.process;
  if (config === undefined || config.cmd === "") throw new ConnectError("no command given: process.cmd is empty", Code.InvalidArgument);
  if ([config.cmd, ...config.args].some((arg) => arg.includes("\0"))) {
    throw new ConnectError("the command or an argument contains a NUL byte", Code.InvalidArgument);
  }
  if (req.tag === "") throw new ConnectError("an empty tag is not a tag: leave it out instead", Code.InvalidArgument);
  const pty = terminalSize(req);
  const cwd = await workingDirectory(config.cwd, user, settings.defaultWorkdir);
  const env = buildEnvironment(user, config.envs, { pty: pty !== undefined, cwd, sandbox: settings.envVars });
  const problem = environmentProblem(env);
  if (problem !== undefined) throw new ConnectError(problem, Code.InvalidArgument);
  try {
    await checkExecutable(config.cmd, env.PATH ?? "", cwd, user);
    const launch = launchAs(user, config.cmd, config.args, { pty: pty !== undefined, env });
    return {
      config: create(ProcessConfigSchema, { cmd: config.cmd, args: config.args, envs: config.envs, cwd }),
      owner: user,
      tag: req.tag,
      spawn: { cmd: config.cmd, launch, env: launch.env, cwd, io: pty !== undefined ? { kind: "pty", ...pty } : { kind: "pipes", stdin: req.stdin ?? true } },
    };
  } catch (err) {
    if (err instanceof SpawnError) throw new ConnectError(err.message, err.code);
    if (err instanceof LaunchError) throw new ConnectError(err.message, Code.FailedPrecondition);
    throw err;
  }
}
