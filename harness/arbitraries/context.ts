/**
 * What a generator of hostile requests needs to know about the agent it aims at. Requests that
 * change the filesystem (upload, remove, move, mkdir) must resolve inside `scratch`: the agent runs
 * as root, and a fuzzer that may say "Remove /" would destroy the machine it runs on.
 */
export interface FuzzContext {
  readonly token: string;
  /** An absolute directory the generators may fill, move and delete in. */
  readonly scratch: string;
  /** A directory inside `scratch` that `user` owns and races writes in (stress/symlink-arena.ts). */
  readonly arena?: { readonly dir: string; readonly user: string };
}
