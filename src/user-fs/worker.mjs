// A file worker: a thread that performs one file operation at a time with the credentials of the
// user who asked for it (native/fs-creds), then returns to the agent's own. Operations are the
// synchronous `node:fs` calls, so each runs on this thread, where the credentials are in force.
//
// Plain JavaScript, loaded as it is by the built agent and from the sources alike: a worker
// thread cannot use the TypeScript loader the tests run under. The operations and their argument
// lists are typed in protocol.ts (`WorkerOps`); keep the two in step.
import * as fs from "node:fs";
import { createRequire } from "node:module";
import { parentPort } from "node:worker_threads";

// src/user-fs and dist/user-fs are both two levels below the repository.
const creds = createRequire(import.meta.url)("../../native/fs-creds/build/Release/fs_creds.node");

const recordOf = (st) => ({
  dev: st.dev,
  ino: st.ino,
  mode: st.mode,
  uid: st.uid,
  gid: st.gid,
  size: st.size,
  atimeMs: st.atimeMs,
  mtimeMs: st.mtimeMs,
  ctimeMs: st.ctimeMs,
});

const errorRecord = (err) => ({ message: err?.message ?? String(err), code: err?.code, errno: err?.errno, syscall: err?.syscall, path: err?.path });

const OPS = {
  open: (path, flags, mode) => fs.openSync(path, flags, mode),
  lstat: (path) => recordOf(fs.lstatSync(path)),
  stat: (path) => recordOf(fs.statSync(path)),
  lstatAll: (paths) =>
    paths.map((path) => {
      try {
        return { stats: recordOf(fs.lstatSync(path)) };
      } catch (err) {
        return { error: errorRecord(err) };
      }
    }),
  readdir: (path) => fs.readdirSync(path),
  readlink: (path) => fs.readlinkSync(path),
  realpath: (path) => fs.realpathSync(path),
  mkdir: (path, recursive, mode) => fs.mkdirSync(path, { recursive, mode }),
  rename: (from, to) => fs.renameSync(from, to),
  rm: (path, recursive, force) => fs.rmSync(path, { recursive, force }),
  symlink: (target, path) => fs.symlinkSync(target, path),
  copyFile: (from, to, mode) => fs.copyFileSync(from, to, mode),
  chmod: (path, mode) => fs.chmodSync(path, mode),
  utimes: (path, atimeMs, mtimeMs) => fs.utimesSync(path, atimeMs / 1000, mtimeMs / 1000),
  lutimes: (path, atimeMs, mtimeMs) => fs.lutimesSync(path, atimeMs / 1000, mtimeMs / 1000),
  // Whether the user may list `path`: opening it for reading is the kernel's own answer.
  openDir: (path) => fs.closeSync(fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)),
  readMetadata: (path) => creds.readMetadata(path),
  // [fsuid, fsgid] in force while an operation runs (tests prove the switch with it).
  whoami: () => creds.current(),
};

parentPort.on("message", (request) => {
  try {
    creds.become(request.uid, request.gid, request.groups);
  } catch (err) {
    parentPort.postMessage({ id: request.id, error: { ...errorRecord(err), code: "EPERM" } });
    return;
  }
  let reply;
  try {
    reply = { id: request.id, value: OPS[request.op](...request.args) };
  } catch (err) {
    reply = { id: request.id, error: errorRecord(err) };
  } finally {
    // A thread that cannot return to the agent's credentials must not serve anyone again: the
    // exception ends this worker, and the pool replaces it.
    creds.restore();
  }
  parentPort.postMessage(reply);
});
