/**
 * The user tables (src/users.ts) against the real /etc/passwd and /etc/group: users added and
 * changed inside a running sandbox are seen without a restart, while the files are checked only
 * once per turn of the event loop.
 */
import { execFileSync } from "node:child_process";
import { setImmediate as nextTurn } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { lookupUser } from "../../src/users.js";

const NAME = `sa-tables-${process.pid}`;
const GROUP = `sa-tgroup-${process.pid}`;

describe("user tables", () => {
  afterAll(() => {
    execFileSync("sh", ["-c", `userdel ${NAME} 2>/dev/null; groupdel ${GROUP} 2>/dev/null; true`]);
  });

  it("finds a user added a moment ago, even in the turn that already read the tables", () => {
    expect(lookupUser("root")?.uid).toBe(0); // the tables are read, and checked for this turn
    execFileSync("useradd", ["--no-create-home", "--shell", "/bin/sh", NAME]);
    expect(lookupUser(NAME)?.name).toBe(NAME);
  });

  it("sees a changed user from the next turn on", async () => {
    const before = lookupUser(NAME);
    expect(before).toBeDefined();
    execFileSync("groupadd", [GROUP]);
    execFileSync("usermod", ["--append", "--groups", GROUP, NAME]);
    await nextTurn();
    const gid = Number(execFileSync("getent", ["group", GROUP]).toString().split(":")[2]);
    expect(lookupUser(NAME)?.groups).toContain(gid);
    expect(before?.groups).not.toContain(gid);
  });
});
