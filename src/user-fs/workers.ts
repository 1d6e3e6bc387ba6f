/**
 * The pool of file workers that act as non-root callers. A few threads suffice: each operation
 * is one or a few system calls, and while one thread waits on a slow disk the others go on.
 * Workers are started on first use, ended when the agent goes idle, never keep the agent alive, and a worker that dies (it
 * could not return to the agent's credentials, or crashed) fails only its own requests and is
 * replaced by a fresh one.
 */
import { Worker } from "node:worker_threads";
import type { User } from "../users.js";
import { errorFrom, type OpName, type Reply, type Request, type WorkerOps } from "./protocol.js";

const POOL_SIZE = 4;

const WORKER_URL = new URL("./worker.mjs", import.meta.url);

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

class FileWorker {
  readonly pending = new Map<number, Pending>();
  private readonly worker: Worker;

  constructor(onGone: (gone: FileWorker) => void) {
    // trackUnmanagedFds off: descriptors a worker opens are handed to the agent, which closes
    // them; a worker that ended would otherwise close them all under the agent's feet.
    this.worker = new Worker(WORKER_URL, { stdout: false, stderr: false, trackUnmanagedFds: false });
    this.worker.on("message", (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      if (waiting === undefined) return;
      this.pending.delete(reply.id);
      if (reply.error !== undefined) waiting.reject(errorFrom(reply.error));
      else waiting.resolve(reply.value);
    });
    const fail = (err: Error): void => {
      onGone(this);
      for (const waiting of this.pending.values()) waiting.reject(Object.assign(new Error(`file worker stopped: ${err.message}`), { code: "EIO" }));
      this.pending.clear();
    };
    this.worker.once("error", fail);
    this.worker.once("exit", (code) => fail(new Error(`exit code ${code}`)));
    // After the listeners: a 'message' listener added later would ref the worker's port again.
    this.worker.unref();
  }

  send(request: Request, pending: Pending): void {
    this.pending.set(request.id, pending);
    this.worker.postMessage(request);
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class FileWorkerPool {
  private readonly workers: FileWorker[] = [];
  private nextId = 1;

  run<K extends OpName>(user: User, op: K, ...args: Parameters<WorkerOps[K]>): Promise<ReturnType<WorkerOps[K]>> {
    const request: Request<K> = { id: this.nextId++, uid: user.uid, gid: user.gid, groups: user.groups, op, args };
    return new Promise((resolve, reject) => {
      this.pick().send(request as Request, { resolve: resolve as (value: unknown) => void, reject });
    });
  }

  /** The least busy worker, starting another while the pool is not full. */
  private pick(): FileWorker {
    let best: FileWorker | undefined;
    for (const worker of this.workers) if (best === undefined || worker.pending.size < best.pending.size) best = worker;
    if (best !== undefined && (best.pending.size === 0 || this.workers.length >= POOL_SIZE)) return best;
    const fresh = new FileWorker((gone) => {
      const at = this.workers.indexOf(gone);
      if (at >= 0) this.workers.splice(at, 1);
    });
    this.workers.push(fresh);
    return fresh;
  }

  /**
   * Ends the workers that have nothing to do; the next request starts one again. Each is a V8
   * isolate of its own, ~9 MB at rest and as much as a large listing made its heap grow: the
   * agent's collection when idle (idle-memory.ts) does not reach into their heaps.
   */
  async releaseIdle(): Promise<void> {
    const idle = this.workers.filter((worker) => worker.pending.size === 0);
    for (const worker of idle) this.workers.splice(this.workers.indexOf(worker), 1);
    await Promise.all(idle.map((worker) => worker.terminate()));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((worker) => worker.terminate()));
  }
}
