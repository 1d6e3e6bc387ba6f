/**
 * The thread that forks the agent's children (fork-thread.ts explains why a thread). Each request
 * names the descriptors the child gets as stdio, made by the main thread; this thread forks and
 * execs, raises the child's OOM score at once (children it starts inherit it), reaps it and
 * reports its exit. It never reads or writes a child's output.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { parentPort } from "node:worker_threads";

const port = parentPort;

function raiseOomScore(pid, score) {
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(score));
  } catch {
    // no /proc, or not allowed: the score stays as inherited
  }
}

function forkExec(request) {
  const { id } = request;
  const fail = (err) => port.postMessage({ type: "failed", id, code: err?.code, message: err?.message ?? String(err) });
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

port.on("message", (request) => {
  try {
    forkExec(request);
  } catch (err) {
    port.postMessage({ type: "failed", id: request.id, code: undefined, message: String(err) });
  }
});
