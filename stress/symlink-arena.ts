/**
 * Issue 14's symlink swaps, live: a directory that an unprivileged user (`nobody`) owns, where a
 * process running as that user keeps replacing whatever the agent writes (temporary upload files,
 * targets, directories) with symlinks into a root-only "canary" tree, and plants links to it under
 * the names requests use. The campaign's "swap" requests (arbitraries/http-swap.ts) upload, make
 * directories and move files there as root and as that user. Whatever the race, no canary file may
 * change its content, mode or owner, and no new file may appear among them: `check` says what did.
 *
 * Needs root (the campaign's own agent runs as root; CI too); without it there is no arena.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lookupUser } from "../src/users.js";

export const ARENA_USER = "nobody";

export interface SymlinkArena {
  /** Where the swap requests write: inside the scratch tree, owned by ARENA_USER. */
  readonly dir: string;
  readonly user: string;
  /** Makes the directory again (the campaign empties its scratch tree every minute). */
  readonly prepare: () => Promise<void>;
  /** undefined while the canary tree is intact; otherwise what changed. */
  readonly check: () => Promise<string | undefined>;
  readonly stop: () => Promise<void>;
}

async function snapshot(dir: string): Promise<string> {
  const names = (await readdir(dir)).sort();
  const lines = await Promise.all(
    names.map(async (name) => {
      const st = await lstat(join(dir, name));
      const content = st.isFile()
        ? createHash("sha256")
            .update(await readFile(join(dir, name)))
            .digest("hex")
            .slice(0, 16)
        : "-";
      return `${name} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${content}`;
    }),
  );
  return lines.join("\n");
}

export async function startSymlinkArena(scratch: string): Promise<SymlinkArena | undefined> {
  const user = lookupUser(ARENA_USER);
  if (process.getuid?.() !== 0 || user === undefined) return undefined;
  const canary = await mkdtemp(join(tmpdir(), "agent-fuzz-canary-"));
  await chmod(canary, 0o755);
  await writeFile(join(canary, "passwd"), "root:x:0:0:canary\n", { mode: 0o644 });
  await writeFile(join(canary, "shadow"), "root:canary-secret\n", { mode: 0o600 });
  const expected = await snapshot(canary);
  const dir = join(scratch, "arena");
  const prepare = async (): Promise<void> => {
    // The user must be able to reach its directory through the scratch tree (mkdtemp makes it 0700).
    await chmod(scratch, 0o711);
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755);
    await chown(dir, user.uid, user.gid);
  };
  await prepare();
  // The attacker: replaces every regular file and directory it may in its directory with links
  // into the canary tree, and keeps links planted under the names the requests use.
  const script = `n=0
while :; do
  if cd ${dir} 2>/dev/null; then
    for f in .*.upload-* .*.moving-* *; do
      [ -e "$f" ] && [ ! -L "$f" ] || continue
      n=$((n + 1))
      # A directory root made here cannot be emptied by its owner, but it can be moved aside.
      { rm -rf "$f" || mv "$f" ".aside-$n"; ln -s ${canary}/passwd "$f"; } 2>/dev/null
      [ -d ".aside-$n" ] && ln -sfn ${canary} "$f" 2>/dev/null
    done
    ln -sfn ${canary} etc 2>/dev/null; ln -sf ${canary}/passwd notes.txt 2>/dev/null; ln -sf ${canary}/preload dangling.txt 2>/dev/null
    cd /
  fi
  sleep 0.01
done`;
  const attacker: ChildProcess = spawn("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", "sh", "-c", script], {
    stdio: "ignore",
  });
  return {
    dir,
    user: ARENA_USER,
    prepare,
    check: async () => {
      const now = await snapshot(canary);
      return now === expected
        ? undefined
        : `the canary tree changed through a planted symlink:\n  was: ${expected.replace(/\n/g, "\n       ")}\n  now: ${now.replace(/\n/g, "\n       ")}`;
    },
    stop: async () => {
      attacker.kill("SIGKILL");
      await rm(canary, { recursive: true, force: true });
    },
  };
}
