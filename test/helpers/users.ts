/**
 * Keeps login shells in tests independent of the machine's own dotfiles. The SDK starts commands
 * as `bash -l -c` and terminals as `bash -i -l` for root, which source root's ~/.profile and
 * ~/.bashrc: on these machines that runs `pyenv init`, whose rehash lock, once left behind by a
 * shell a test killed, stalls every later login shell for a minute. The in-process agent reads a
 * copy of /etc/passwd in which root's home is a fresh, empty directory; everything else is real.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useUserDatabase } from "../../src/users.js";

export async function isolateRootHome(): Promise<{ home: string; restore: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "agent-root-home-"));
  const home = join(dir, "root");
  await mkdir(home, { mode: 0o700 });
  const passwd = (await readFile("/etc/passwd", "utf8"))
    .split("\n")
    .map((line) => {
      const fields = line.split(":");
      if (fields[0] !== "root" || fields.length < 7) return line;
      fields[5] = home;
      return fields.join(":");
    })
    .join("\n");
  const passwdCopy = join(dir, "passwd");
  await writeFile(passwdCopy, passwd);
  useUserDatabase(passwdCopy, "/etc/group");
  return {
    home,
    restore: async () => {
      useUserDatabase("/etc/passwd", "/etc/group");
      await rm(dir, { recursive: true, force: true });
    },
  };
}
