/**
 * The building blocks' floor: fastify with @connectrpc/connect-fastify and nothing else (no auth,
 * hooks, metrics, logging, workarounds or supervisor), serving the agent's own generated services
 * in the simplest way that answers the bench's calls. What the agent adds is what it measures
 * above this; what this measures above a bare node server is the stack's own cost.
 *
 * Argument: `h1` or `h2c`. Prints its port.
 *   Filesystem.Stat    lstat of the path
 *   Process.Start      child_process.spawn on the loop, the start and end events
 *   ExecutionService.Execute  no kernel: one main result, at once (the streaming round trip alone)
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import Fastify, { type FastifyInstance } from "fastify";
import { spawn } from "node:child_process";
import { lstat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { basename } from "node:path";
import {
  EntryInfoSchema,
  ExecuteResponseSchema,
  ExecutionService,
  Filesystem,
  Process,
  StartResponseSchema,
  StatResponseSchema,
} from "../../src/gen/sandboxagent/api_pb.js";

function routes(router: ConnectRouter): void {
  router.service(Filesystem, {
    async stat(req) {
      const st = await lstat(req.path);
      return create(StatResponseSchema, {
        entry: create(EntryInfoSchema, { name: basename(req.path), path: req.path, size: BigInt(st.size), mode: st.mode & 0o7777 }),
      });
    },
  });
  router.service(Process, {
    async *start(req) {
      const child = spawn(req.process?.cmd ?? "", req.process?.args ?? [], { stdio: "ignore" });
      const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 0)));
      yield create(StartResponseSchema, { event: { event: { case: "start", value: { pid: child.pid ?? 0 } } } });
      const exitCode = await exited;
      yield create(StartResponseSchema, { event: { event: { case: "end", value: { exitCode, exited: true, status: `exit status ${exitCode}` } } } });
    },
  });
  router.service(ExecutionService, {
    async *execute() {
      const now = timestampNow();
      yield create(ExecuteResponseSchema, { event: { case: "result", value: { text: "2", isMainResult: true, startedAt: now, finishedAt: now } } });
    },
  });
}

const mode = process.argv[2];
const app: FastifyInstance = mode === "h2c" ? (Fastify({ logger: false, http2: true }) as unknown as FastifyInstance) : Fastify({ logger: false });
await app.register(fastifyConnectPlugin, { routes });
await app.listen({ host: "127.0.0.1", port: 0 });
console.log((app.server.address() as AddressInfo).port);
