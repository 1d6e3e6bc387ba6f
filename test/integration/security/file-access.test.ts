/**
 * Issue 14, item 1: every file operation of a non-root caller succeeds exactly when that Linux
 * user could do it itself, and nobody's symlinks lead a write where its planter could not write.
 * Each case performs the attack against a real agent, with real users (useradd), real symlinks
 * planted by those users, and a root-only "system" tree standing in for /etc.
 */
import { Code } from "@connectrpc/connect";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signature, signaturePath } from "../../../src/auth.js";
import { Filesystem } from "../../../src/gen/sandboxagent/api_pb.js";
import type { User } from "../../../src/users.js";
import { lookupUser } from "../../../src/users.js";
import { AUTH, client, startTestAgent, TOKEN, type TestAgent, type TransportName } from "../../helpers/agent.js";
import { ATTACKER, ensureUser, runAs, spawnAs, VICTIM } from "../../helpers/linux-users.js";
import { expectConnectError, WatchStream } from "../../helpers/filesystem.js";
import { downloadPath, postForm, type Part } from "../../helpers/form.js";

let agent: TestAgent;
let mallory: User;
let alice: User;
/** Stands in for /etc: owned by root, readable by all, writable by root only. */
let system: string;
/** A root-only secret in it (0600), like /etc/shadow. */
let secret: string;
/** A world-readable system file (0644), like /etc/passwd. */
let config: string;
let caseNo = 0;

const as = (user: User) => ({ headers: { ...AUTH, "x-user": user.name } });
const file = (filename: string, content: string): Part => ({ name: "file", filename, content });
const field = (value: string): Part => ({ name: "path", content: value });
const upload = (user: User, path: string, content: string) =>
  postForm(`${agent.url}/upload`, [file(path, content), field(path)], { ...AUTH, "x-user": user.name });

/** A fresh directory in `user`'s home, made by that user. */
function homeCase(user: User): string {
  const dir = join(user.home, `case-${++caseNo}`);
  runAs(user, `mkdir ${dir}`);
  return dir;
}

function unchangedSystem(): void {
  expect(readFileSync(config, "utf8")).toBe("root:x:0:0\n");
  expect(statSync(config).uid).toBe(0);
  expect(statSync(config).mode & 0o7777).toBe(0o644);
  expect(readFileSync(secret, "utf8")).toBe("the secret\n");
  expect(statSync(secret).mode & 0o7777).toBe(0o600);
}

beforeAll(async () => {
  mallory = ensureUser(ATTACKER);
  alice = ensureUser(VICTIM);
  system = mkdtempSync(join(tmpdir(), "agent-system-"));
  chmodSync(system, 0o755);
  config = join(system, "passwd");
  writeFileSync(config, "root:x:0:0\n", { mode: 0o644 });
  secret = join(system, "shadow");
  writeFileSync(secret, "the secret\n", { mode: 0o600 });
  agent = await startTestAgent();
});

afterAll(async () => {
  await agent?.close();
  rmSync(system, { recursive: true, force: true });
  for (const user of [mallory, alice]) if (user) execFileSync("sh", ["-c", `rm -rf ${user.home}/case-*`]);
});

describe("upload as an unprivileged user", () => {
  it("through the user's own symlink to a root file: refused, the root file untouched", async () => {
    const dir = homeCase(mallory);
    runAs(mallory, `ln -s ${config} ${dir}/notes.txt`);
    const res = await upload(mallory, `${dir}/notes.txt`, "mallory::0:0\n");
    expect(res.status).toBe(403);
    unchangedSystem();
    expect(lstatSync(`${dir}/notes.txt`).isSymbolicLink()).toBe(true);
  });

  it("through a dangling symlink to a file root could create: refused, nothing created", async () => {
    const dir = homeCase(mallory);
    runAs(mallory, `ln -s ${system}/ld.so.preload ${dir}/preload`);
    const res = await upload(mallory, `${dir}/preload`, "/home/mallory/evil.so\n");
    expect(res.status).toBe(403);
    expect(existsSync(`${system}/ld.so.preload`)).toBe(false);
  });

  it("through a symlinked parent directory: refused, nothing created", async () => {
    const dir = homeCase(mallory);
    runAs(mallory, `ln -s ${system} ${dir}/etc`);
    const res = await upload(mallory, `${dir}/etc/cron-job`, "* * * * * root sh\n");
    expect(res.status).toBe(403);
    expect(existsSync(`${system}/cron-job`)).toBe(false);
    const res2 = await upload(mallory, `${dir}/etc/new/deeper/file`, "x");
    expect(res2.status).toBe(403);
    expect(existsSync(`${system}/new`)).toBe(false);
  });

  it("into another user's private home: refused", async () => {
    rmSync(`${alice.home}/planted.txt`, { force: true });
    const res = await upload(mallory, `${alice.home}/planted.txt`, "x");
    expect(res.status).toBe(403);
    expect(existsSync(`${alice.home}/planted.txt`)).toBe(false);
  });

  it("a temporary file swapped for a symlink during the upload changes no root file, and is reported", async () => {
    const dir = homeCase(mallory);
    // The attacker replaces every temporary upload file in their directory with a link to a root
    // file, as fast as it can: the old code chmodded that root file by path (0777 on first try).
    const racer = spawnAs(mallory, [
      "sh",
      "-c",
      `end=$(($(date +%s) + 20)); while [ $(date +%s) -lt $end ]; do for f in ${dir}/.*.upload-*; do [ -f "$f" ] && ln -sf ${secret} "$f" 2>/dev/null; done; done`,
    ]);
    try {
      const outcomes = new Set<number>();
      for (let i = 0; i < 30; i++) {
        const content = `upload ${i}\n`.repeat(2000);
        const res = await upload(mallory, `${dir}/target.txt`, content);
        outcomes.add(res.status);
        // Either the upload is in place, or the caller hears that it is not.
        if (res.status === 200) expect(readFileSync(`${dir}/target.txt`, "utf8")).toBe(content);
        else expect([409, 403, 404]).toContain(res.status);
        unchangedSystem();
      }
      expect([...outcomes].every((status) => [200, 409, 403, 404].includes(status))).toBe(true);
    } finally {
      racer.kill("SIGKILL");
    }
  });

  it("with a group the user belongs to only as a supplementary group: allowed, as the kernel would", async () => {
    execFileSync("sh", ["-c", "getent group sa-team >/dev/null || groupadd sa-team"]);
    execFileSync("usermod", ["-aG", "sa-team", mallory.name]);
    const shared = mkdtempSync(join(tmpdir(), "agent-team-"));
    try {
      chmodSync(shared, 0o770);
      chownSync(shared, 0, Number(execFileSync("getent", ["group", "sa-team"], { encoding: "utf8" }).split(":")[2]));
      const res = await upload(lookupUser(mallory.name)!, `${shared}/report.txt`, "team work");
      expect(res.status).toBe(200);
      expect(statSync(`${shared}/report.txt`).uid).toBe(mallory.uid);
      const refused = await upload(alice, `${shared}/report2.txt`, "not a member");
      expect(refused.status).toBe(403);
    } finally {
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it("the user's own files and own symlinks work as before, and what it creates is its own", async () => {
    const dir = homeCase(mallory);
    runAs(mallory, `echo old > ${dir}/real.txt && chmod 0640 ${dir}/real.txt && ln -s real.txt ${dir}/link.txt`);
    const res = await upload(mallory, `${dir}/link.txt`, "new content");
    expect(res.status).toBe(200);
    expect(readFileSync(`${dir}/real.txt`, "utf8")).toBe("new content");
    expect(lstatSync(`${dir}/link.txt`).isSymbolicLink()).toBe(true);
    expect(statSync(`${dir}/real.txt`).mode & 0o777).toBe(0o640);
    const fresh = await upload(mallory, `${dir}/a/b/c.txt`, "deep");
    expect(fresh.status).toBe(200);
    for (const path of [`${dir}/a`, `${dir}/a/b`, `${dir}/a/b/c.txt`]) {
      expect(statSync(path).uid).toBe(mallory.uid);
      expect(statSync(path).gid).toBe(mallory.gid);
    }
  });
});

describe("upload as root into a directory other users can write", () => {
  it("does not follow a symlink its owner planted there", async () => {
    const dir = homeCase(mallory);
    runAs(mallory, `ln -s ${config} ${dir}/notes.txt && ln -s ${system} ${dir}/etc`);
    const res = await upload(lookupUser("root")!, `${dir}/notes.txt`, "platform data\n");
    expect(res.status).toBe(403);
    const res2 = await upload(lookupUser("root")!, `${dir}/etc/cron-job`, "platform data\n");
    expect(res2.status).toBe(403);
    unchangedSystem();
    expect(existsSync(`${system}/cron-job`)).toBe(false);
  });

  it("does not follow another user's symlink even where only root can write (moved there by root itself)", async () => {
    const dir = homeCase(mallory);
    runAs(mallory, `ln -s ${config} ${dir}/notes.txt`);
    const rootDir = mkdtempSync(join(tmpdir(), "agent-rootdir-"));
    try {
      const fs = client(Filesystem, agent.url);
      await fs.move({ source: `${dir}/notes.txt`, destination: `${rootDir}/notes.txt` }, as(lookupUser("root")!));
      expect(lstatSync(`${rootDir}/notes.txt`).uid).toBe(mallory.uid);
      const res = await upload(lookupUser("root")!, `${rootDir}/notes.txt`, "platform data\n");
      expect(res.status).toBe(403);
      await expectConnectError(fs.makeDir({ path: `${rootDir}/notes.txt/sub` }, as(lookupUser("root")!)), Code.PermissionDenied);
      unchangedSystem();
    } finally {
      rmSync(rootDir, { recursive: true, force: true });
    }
  });

  it("still follows root's own symlinks, and writes where it was asked", async () => {
    const dir = homeCase(mallory);
    const res = await upload(lookupUser("root")!, `${dir}/given.txt`, "for mallory");
    expect(res.status).toBe(200);
    expect(readFileSync(`${dir}/given.txt`, "utf8")).toBe("for mallory");
    const rootDir = mkdtempSync(join(tmpdir(), "agent-rootlinks-"));
    try {
      mkdirSync(join(rootDir, "real"));
      execFileSync("ln", ["-s", "real", join(rootDir, "link")]);
      const res2 = await upload(lookupUser("root")!, join(rootDir, "link", "f.txt"), "through root's link");
      expect(res2.status).toBe(200);
      expect(readFileSync(join(rootDir, "real", "f.txt"), "utf8")).toBe("through root's link");
    } finally {
      rmSync(rootDir, { recursive: true, force: true });
    }
  });
});

describe("remove as root of a tree another user can write into", () => {
  it("deletes nothing outside the tree while that user swaps its directories for symlinks", async () => {
    const tree = mkdtempSync(join(tmpdir(), "agent-rmtree-"));
    const bait = mkdtempSync(join(tmpdir(), "agent-rmbait-"));
    try {
      chmodSync(tree, 0o755);
      for (let i = 0; i < 50; i++) writeFileSync(join(bait, `keep-${i}`), "keep");
      const shared = join(tree, "shared");
      mkdirSync(shared);
      chownSync(shared, mallory.uid, mallory.gid);
      // mallory's own directories, each with something in it, so that a remove must list them.
      runAs(mallory, `cd ${shared} && for i in $(seq 1 200); do mkdir d$i && echo x > d$i/f; done`);
      const racer = spawnAs(mallory, [
        "sh",
        "-c",
        `cd ${shared} || exit 0; end=$(($(date +%s) + 15)); while [ $(date +%s) -lt $end ]; do for d in d*; do [ -L "$d" ] || { mv "$d" ".$d" && ln -s ${bait} "$d"; } 2>/dev/null; done; done`,
      ]);
      try {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const fs = client(Filesystem, agent.url);
        await fs.remove({ path: tree }, as(lookupUser("root")!)).catch(() => undefined);
      } finally {
        racer.kill("SIGKILL");
      }
      for (let i = 0; i < 50; i++) expect(existsSync(join(bait, `keep-${i}`))).toBe(true);
    } finally {
      rmSync(tree, { recursive: true, force: true });
      rmSync(bait, { recursive: true, force: true });
    }
  });
});

describe("download", () => {
  it("a root-only file is not readable as another user, by header or by its signed URL", async () => {
    const viaHeader = await fetch(`${agent.url}${downloadPath(secret)}`, as(alice));
    expect(viaHeader.status).toBe(403);
    const shadow = await fetch(`${agent.url}/download/etc/shadow`, as(alice));
    expect(shadow.status).toBe(403);

    const dir = homeCase(alice);
    runAs(alice, `ln -s ${secret} ${dir}/mine.txt`);
    const path = `${dir}/mine.txt`;
    const sig = signature(signaturePath(path), "read", alice.name, TOKEN);
    const signed = await fetch(`${agent.url}${downloadPath(path)}?signature=${encodeURIComponent(sig)}&username=${alice.name}`);
    expect(signed.status).toBe(403);
    expect(await signed.text()).not.toContain("the secret");
  });

  it("what the user may read, it downloads", async () => {
    const dir = homeCase(alice);
    runAs(alice, `echo hers > ${dir}/own.txt && chmod 0600 ${dir}/own.txt`);
    const res = await fetch(`${agent.url}${downloadPath(`${dir}/own.txt`)}`, as(alice));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hers\n");
    const other = await fetch(`${agent.url}${downloadPath(`${dir}/own.txt`)}`, as(mallory));
    expect(other.status).toBe(403);
  });
});

describe.each<TransportName>(["connect-json-h1", "grpc"])("Filesystem RPCs as an unprivileged user (%s)", (transportName) => {
  const fs = () => client(Filesystem, agent.url, transportName);

  it("Stat and ListDir of another user's private home are permission_denied", async () => {
    runAs(alice, `echo private > ${alice.home}/diary.txt`);
    await expectConnectError(fs().stat({ path: `${alice.home}/diary.txt` }, as(mallory)), Code.PermissionDenied);
    await expectConnectError(fs().listDir({ path: alice.home, depth: 1 }, as(mallory)), Code.PermissionDenied);
    const own = await fs().listDir({ path: alice.home, depth: 1 }, as(alice));
    expect(own.entries.map((entry) => entry.name)).toContain("diary.txt");
  });

  it("ListDir skips what the user cannot see below the top, as find would", async () => {
    const dir = homeCase(alice);
    runAs(alice, `mkdir -p ${dir}/open/inner ${dir}/closed/inner && chmod 0755 ${alice.home} ${dir} && chmod 0700 ${dir}/closed`);
    try {
      const listed = await fs().listDir({ path: dir, depth: 5 }, as(mallory));
      const names = listed.entries.map((entry) => entry.path.slice(dir.length + 1));
      expect(names).toEqual(["closed", "open", "open/inner"]);
    } finally {
      runAs(alice, `chmod 0700 ${alice.home}`);
    }
  });

  it("MakeDir through the user's symlink to a root directory is refused and creates nothing", async () => {
    const dir = homeCase(mallory);
    runAs(mallory, `ln -s ${system} ${dir}/etc`);
    await expectConnectError(fs().makeDir({ path: `${dir}/etc/sudoers.d` }, as(mallory)), Code.PermissionDenied);
    expect(existsSync(`${system}/sudoers.d`)).toBe(false);
  });

  it("Move of a root file, or into a root directory, is refused", async () => {
    const dir = homeCase(mallory);
    await expectConnectError(fs().move({ source: secret, destination: `${dir}/stolen` }, as(mallory)), Code.PermissionDenied);
    runAs(mallory, `echo payload > ${dir}/payload`);
    await expectConnectError(fs().move({ source: `${dir}/payload`, destination: `${system}/planted` }, as(mallory)), Code.PermissionDenied);
    unchangedSystem();
    expect(existsSync(`${system}/planted`)).toBe(false);
  });

  it("Remove of another user's file, or of a root tree, is refused and removes nothing", async () => {
    const dir = homeCase(alice);
    runAs(alice, `echo keep > ${dir}/keep.txt`);
    await expectConnectError(fs().remove({ path: `${dir}/keep.txt` }, as(mallory)), Code.PermissionDenied);
    expect(existsSync(`${dir}/keep.txt`)).toBe(true);
    await expectConnectError(fs().remove({ path: system }, as(mallory)), Code.PermissionDenied);
    unchangedSystem();
  });

  it("a watch of another user's private directory is refused", async () => {
    await expectConnectError(fs().createWatcher({ path: alice.home, recursive: true }, as(mallory)), Code.PermissionDenied);
    const stream = new WatchStream(fs(), alice.home, false, { "x-user": mallory.name });
    expect((await stream.done)?.code).toBe(Code.PermissionDenied);
  });
});

describe("file workers", () => {
  it("each operation runs with its own caller's credentials, and the agent's thread keeps root's", async () => {
    const { FileWorkerPool } = await import("../../../src/user-fs/workers.js");
    const pool = new FileWorkerPool();
    try {
      const users = [mallory, alice, mallory, alice, mallory, alice, mallory, alice];
      const seen = await Promise.all(users.map((user) => pool.run(user, "whoami")));
      expect(seen).toEqual(users.map((user) => [user.uid, user.gid]));
      await expect(pool.run(mallory, "stat", secret)).resolves.toMatchObject({ uid: 0 });
      await expect(pool.run(mallory, "open", secret, 0, 0)).rejects.toMatchObject({ code: "EACCES" });
      expect(process.getuid?.()).toBe(0);
      expect(readFileSync(secret, "utf8")).toBe("the secret\n");
    } finally {
      await pool.close();
    }
  });
});
