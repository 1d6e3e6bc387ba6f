/**
 * The run's scratch directory. Everything the soak creates, moves or removes is a path built by
 * `insideScratch`, which refuses anything that would resolve outside it.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve, sep } from "node:path";

export function insideScratch(scratch: string, name: string): string {
  const root = resolve(scratch);
  const path = resolve(root, name);
  if (!path.startsWith(root + sep)) throw new Error(`refusing ${JSON.stringify(name)}: it leaves the scratch directory ${root}`);
  return path;
}

/** A new directory on this machine, for an agent started here. */
export async function localScratch(): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), "agent-soak-"));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A path for a scratch directory on a remote agent's machine; the agent creates it. */
export function remoteScratchPath(): string {
  return `/tmp/agent-soak-${randomBytes(6).toString("hex")}`;
}
