/**
 * The environment a caller gives a process reaches that process alone. setpriv, which switches to
 * the caller's user, runs as root: handed the caller's LD_PRELOAD, the dynamic loader ran the
 * caller's library as root before the switch. A real library (compiled here) records, in every
 * process that loads it, who that process runs as and what it is.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Process } from "../../../src/gen/sandboxagent/api_pb.js";
import { baseEnvironment } from "../../../src/user-spawn.js";
import type { User } from "../../../src/users.js";
import { AUTH, client, startTestAgent, type TestAgent, type TransportName } from "../../helpers/agent.js";
import { ATTACKER, ensureUser } from "../../helpers/linux-users.js";
import { collect } from "../../helpers/process.js";

let agent: TestAgent;
let mallory: User;
let dir: string;
let library: string;
let proof: string;

const as = (name: string) => ({ headers: { ...AUTH, "x-user": name } });

beforeAll(async () => {
  mallory = ensureUser(ATTACKER);
  dir = mkdtempSync(join(tmpdir(), "agent-preload-"));
  chmodSync(dir, 0o755);
  proof = join(dir, "proof");
  const source = join(dir, "preload.c");
  writeFileSync(
    source,
    `#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void record(void) {
  char exe[256] = "";
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = 0;
  int fd = open("${proof}", O_WRONLY | O_APPEND);
  if (fd >= 0) { dprintf(fd, "%d %s\\n", (int)getuid(), exe); close(fd); }
}
`,
  );
  library = join(dir, "preload.so");
  // g++ is what installs for node-pty's build; -x c compiles the file as C.
  execFileSync("g++", ["-x", "c", "-shared", "-fPIC", "-o", library, source]);
  chmodSync(library, 0o755);
  agent = await startTestAgent();
});

afterAll(async () => {
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Who loaded the library since the last call: one "uid program" line per process. */
function loadedBy(): string[] {
  const lines = readFileSync(proof, "utf8")
    .split("\n")
    .filter((line) => line !== "");
  writeFileSync(proof, "");
  return lines;
}

describe.each(["connect-json-h1", "grpc"] as TransportName[])("LD_PRELOAD from the caller, over %s", (transport) => {
  for (const pty of [false, true]) {
    it(`is loaded by the program only, as the caller's user, never as root before it (${pty ? "terminal" : "pipes"})`, async () => {
      writeFileSync(proof, "", { mode: 0o666 });
      chmodSync(proof, 0o666);
      const c = client(Process, agent.url, transport);
      for (const [user, uid] of [
        [mallory.name, mallory.uid],
        ["root", 0],
      ] as const) {
        const request = { process: { cmd: "/usr/bin/true", args: [], envs: { LD_PRELOAD: library } }, pty: pty ? {} : undefined };
        const got = await collect(c.start(request, as(user)));
        expect(got.end?.exitCode).toBe(0);
        // The program still gets the variable: a caller may preload what it likes into its own program.
        expect(loadedBy()).toEqual([`${uid} /usr/bin/true`]);
      }
    });
  }
});

describe("the program's environment", () => {
  const c = () => client(Process, agent.url, "connect-h2");
  const requested = {
    EQUALS_AND_LINES: "a=b\nc=d\n",
    EMPTY: "",
    UNICODE: "ünïcödé ☃",
    LD_LIBRARY_PATH: "/opt/mine/lib",
    PERL5OPT: "-Mstrict -w",
    BASH_ENV: "/nonexistent/bashenv",
    PATH: "/usr/local/bin:/usr/bin:/bin",
  };

  it("is exactly the one built for it, through the user switch, however odd its values", async () => {
    const got = await collect(c().start({ process: { cmd: "/usr/bin/env", args: ["-0"], envs: requested } }, as(mallory.name)));
    expect(got.end?.exitCode).toBe(0);
    const seen = Object.fromEntries(
      got.stdout
        .toString()
        .split("\0")
        .filter((entry) => entry !== "")
        .map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]),
    );
    expect(seen).toEqual({ ...baseEnvironment(mallory), ...requested });
  });

  it("in a terminal adds the terminal's type and working directory, as it always has", async () => {
    const got = await collect(
      c().start({ process: { cmd: "/bin/sh", args: ["-c", "env | sort"], envs: { MINE: "1" }, cwd: "/tmp" }, pty: {} }, as(mallory.name)),
    );
    const names = got.pty
      .toString()
      .split("\r\n")
      .filter((line) => line !== "")
      .map((line) => line.slice(0, line.indexOf("=")));
    // sh itself sets PWD too (to the same directory); nothing of the launcher's remains.
    expect(names).toEqual(["HOME", "LANG", "LOGNAME", "MINE", "PATH", "PWD", "SHELL", "SHLVL", "TERM", "USER"]);
    expect(got.pty.toString()).toContain("PWD=/tmp\r\n");
    expect(got.pty.toString()).toContain("TERM=xterm-256color\r\n");
  });
});
