/**
 * A process's environment: the shared base (user-spawn.ts), a terminal type for PTYs, the
 * sandbox's variables (POST /init), then the request's own; a terminal's program also learns its working
 * directory from PWD, over a requested one, as node-pty has always told it.
 */
import { baseEnvironment } from "../../user-spawn.js";
import type { User } from "../../users.js";

export interface EnvironmentOptions {
  readonly pty: boolean;
  readonly cwd: string;
  /** The sandbox's own variables (POST /init), between the basics and the request's. */
  readonly sandbox: Readonly<Record<string, string>>;
}

export function buildEnvironment(user: User, requested: Readonly<Record<string, string>>, options: EnvironmentOptions): Record<string, string> {
  const env = baseEnvironment(user);
  if (options.pty) env.TERM = "xterm-256color";
  return { ...env, ...options.sandbox, ...requested, ...(options.pty ? { PWD: options.cwd } : {}) };
}
