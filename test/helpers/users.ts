/**
 * Keeps login shells in tests independent of the machine's own dotfiles. The SDK starts commands
 * as `bash -l -c` and terminals as `bash -i -l` for root, which source root's ~/.profile and
 * ~/.bashrc: on these machines that runs `pyenv init`, whose rehash lock, once left behind by a
 * shell a test killed, stalls every later login shell for a minute. A test file that needs this
 * mocks the agent's user lookups so root's home is a fresh, empty directory; everything else is
 * real:
 *
 *   vi.mock(import("<…>/src/users.js"), async (real) => (await import("<…>/helpers/users.js")).withIsolatedRootHome(await real()));
 *
 * and reads the directory back with `lookupUser("root")!.home`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

type UsersModule = typeof import("../../src/users.js");

export function withIsolatedRootHome(real: UsersModule): UsersModule {
  const home = mkdtempSync(join(tmpdir(), "agent-root-home-"));
  process.once("exit", () => rmSync(home, { recursive: true, force: true }));
  return {
    ...real,
    lookupUser: (name) => {
      const user = real.lookupUser(name);
      return user?.uid === 0 ? { ...user, home } : user;
    },
  };
}
