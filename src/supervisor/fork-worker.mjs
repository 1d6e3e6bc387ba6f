/**
 * The thread that forks the agent's children (fork-thread.ts explains why a thread). Each request
 * names the descriptors the child gets as stdio, made by the main thread; this thread starts the
 * child, raises its OOM score at once (children it starts inherit it) and reports its pid. It
 * never reads or writes a child's output.
 *
 * Pipe children start with posix_spawn (native/child-fds): no copy of the agent's page tables,
 * 0.15 ms where libuv's fork() took 2 ms at 266 MB of RSS. The main thread reaps those, on SIGCHLD
 * ("reaper": "main"). Where posix_spawn cannot do what is asked (a uid or gid to switch to, which
 * only happens without setpriv), the child is forked by libuv's spawn() and this thread reaps it
 * and reports its exit. Terminals are
 * node-pty's fork, reaped by node-pty's own thread.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { parentPort } from "node:worker_threads";

const port = parentPort;
const require = createRequire(import.meta.url);
const childFds = require("../../native/child-fds/build/Release/child_fds.node");

/** A start that failed, with the errno's name where there is one. */
function failed(id, err) {
  port.postMessage({ type: "failed", id, code: err?.code, message: err?.message ?? String(err) });
}

/** Whether posix_spawn can start this child as asked (see above). */
function spawnable(request) {
  if (request.uid !== undefined || request.gid !== undefined) return false;
  // posix_spawn's dup2 onto the same number would keep close-on-exec: never the case, as the
  // agent's own 0-2 are open, but then libuv's spawn() does it right.
  return request.stdio.every((fd) => fd === "ignore" || fd > 2);
}

function posixSpawn(request) {
  const env = Object.entries(request.env).map(([name, value]) => `${name}=${value}`);
  const stdio = request.stdio.map((fd) => (fd === "ignore" ? -1 : fd));
  let pid;
  try {
    pid = childFds.spawn(request.file, [request.file, ...request.args], env, request.cwd, stdio);
  } catch (err) {
    failed(request.id, err);
    return;
  }
  raiseOomScore(pid, request.oomScoreAdj);
  port.postMessage({ type: "started", id: request.id, pid, reaper: "main" });
}

/** node-pty's native fork (forkpty, then its own thread waits for the child), loaded on first use. */
let ptyNative;
function nativePty() {
  if (ptyNative === undefined) {
    const utils = require.resolve("node-pty/lib/utils");
    const loaded = require(utils).loadNativeModule("pty");
    ptyNative = { fork: loaded.module.fork, helper: resolve(utils, "..", loaded.dir, "spawn-helper") };
  }
  return ptyNative;
}

/** A terminal child: the master side's descriptor goes to the main thread, which reads it. */
function forkPty(request) {
  const { fork, helper } = nativePty();
  const exit = { pid: 0 };
  const onExit = (code, signal) => {
    terminals.delete(exit.pid);
    port.postMessage({ type: "exit", pid: exit.pid, code, signal: signal === 0 ? null : signal });
  };
  // uid/gid -1: node-pty's own switch keeps root's groups, so users change through setpriv.
  const term = fork(request.file, request.args, request.parsedEnv, request.cwd, request.cols, request.rows, -1, -1, false, helper, onExit);
  exit.pid = term.pid;
  terminals.add(term.pid);
  raiseOomScore(term.pid, request.oomScoreAdj);
  port.postMessage({ type: "started", id: request.id, pid: term.pid, fd: term.fd, pty: term.pty });
}

function raiseOomScore(pid, score) {
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(score));
  } catch {
    // no /proc, or not allowed: the score stays as inherited
  }
}

function forkExec(request) {
  const { id } = request;
  const fail = (err) => failed(id, err);
  let child;
  try {
    child = spawn(request.file, request.args, {
      cwd: request.cwd,
      env: request.env,
      // setsid(): the child leads a new session and process group, so a signal to -pid reaches
      // everything it starts, and it has no controlling terminal of ours.
      detached: true,
      stdio: request.stdio,
      ...(request.uid !== undefined ? { uid: request.uid } : {}),
      ...(request.gid !== undefined ? { gid: request.gid } : {}),
    });
  } catch (err) {
    fail(err); // E2BIG, EINVAL and the like are thrown at once
    return;
  }
  const pid = child.pid;
  if (pid === undefined) {
    child.once("error", fail); // the others come as an 'error' on the next tick
    return;
  }
  raiseOomScore(pid, request.oomScoreAdj);
  child.on("error", () => {}); // later errors (a signal to a reaped child) change nothing
  child.once("exit", (code, signal) => port.postMessage({ type: "exit", pid, code, signal }));
  port.postMessage({ type: "started", id, pid });
}

/** Terminals whose exit node-pty has not reported yet. */
const terminals = new Set();

/** How long a thread that failed waits for its terminals' exits before it ends all the same. */
const TERMINALS_GONE_MS = 5_000;

/**
 * A thread that failed (a bug threw) ends, but not before its terminals: node-pty's waiting
 * threads report into this thread's environment, and one that reports while the environment is
 * torn down aborts the whole agent (a C++ exception nobody catches, node-pty 1.1.0), or its
 * finalizer waits on a child for ever and the agent cannot exit. So each terminal's group is
 * killed, its exit reported as usual, and the thread ends once all are in (fork-thread.ts then
 * kills and reaps the pipe children it was waiting for).
 */
process.on("uncaughtException", () => {
  for (const pid of terminals) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  const started = Date.now();
  const endWhenGone = () => {
    if (terminals.size === 0 || Date.now() - started > TERMINALS_GONE_MS) process.exit(1);
    else setTimeout(endWhenGone, 10);
  };
  endWhenGone();
});

port.on("message", (request) => {
  // What fault tests do to the thread: an uncaught exception, as a bug here would throw.
  if (request.crash === true) throw new Error("the fork thread was made to crash (fault test)");
  try {
    if (request.parsedEnv !== undefined) forkPty(request);
    else if (spawnable(request)) posixSpawn(request);
    else forkExec(request);
  } catch (err) {
    port.postMessage({ type: "failed", id: request.id, code: undefined, message: String(err) });
  }
});
