import type { Connections } from "../connections.js";

/** What an operation gets: one client's connections, its own directory, and its deadline. */
export interface OpContext {
  readonly conn: Connections;
  /** This client's scratch directory (absolute, inside the run's scratch). */
  readonly dir: string;
  /** Aborted when the operation has taken too long: a hang is a failure, not a wait. */
  readonly signal: AbortSignal;
  /** Milliseconds left before `signal` fires, for Connect-Timeout-Ms. */
  readonly remainingMs: () => number;
  /** A path in `dir` no other operation of this run uses. */
  readonly freshPath: (prefix: string) => string;
}

export interface Operation {
  readonly name: string;
  /** Relative frequency in the mix. */
  readonly weight: number;
  /** Resolves when the operation did what it should; throws (LostBytes for bad payloads) otherwise. */
  readonly run: (ctx: OpContext) => Promise<void>;
}

/** Encodes each segment of an absolute path for /download/<path>. */
export function downloadTarget(path: string): string {
  return `/download${path.split("/").map(encodeURIComponent).join("/")}`;
}
