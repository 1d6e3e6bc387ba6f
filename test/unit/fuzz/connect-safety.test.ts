/**
 * The Connect generators (harness/arbitraries/connect.ts) cover every served RPC in every family,
 * and their safety gate (rpc-safety.ts, rpc-rules.ts) refuses what must never reach an agent that
 * runs as root: paths outside scratch (an empty body is a Remove of the home directory), commands
 * off the allow-list, code in a real kernel, calls that may stay open without a short deadline.
 * No agent is started here.
 */
import { create, toBinary, toJsonString, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import fc from "fast-check";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  ExecuteRequestSchema,
  MoveRequestSchema,
  RemoveRequestSchema,
  StartRequestSchema,
  type ExecuteRequest,
  type MoveRequest,
  type RemoveRequest,
  type StartRequest,
} from "../../../src/gen/sandboxagent/api_pb.js";
import { SERVED_SERVICES } from "../../../src/services/index.js";
import { CONNECT_FAMILIES, connectFamily, servedMethods } from "../../../harness/arbitraries/connect.js";
import type { FuzzContext } from "../../../harness/arbitraries/context.js";
import { hasRule, insideScratch, ruleFor } from "../../../harness/arbitraries/rpc-rules.js";
import { unsafeRequest } from "../../../harness/arbitraries/rpc-safety.js";
import { frame } from "../../../harness/arbitraries/wire-mutations.js";
import type { RequestSpec } from "../../../harness/request.js";

const ctx: FuzzContext = { token: "t", scratch: "/tmp/agent-fuzz-safety" };
const method = (service: string, name: string): DescMethod => servedMethods().find((m) => m.parent.typeName === `sandboxagent.${service}` && m.name === name)!;
const spec = (body: Uint8Array, headers: [string, string][] = [], target = "/x"): RequestSpec => ({
  family: "test",
  transport: "http1",
  method: "POST",
  target,
  headers,
  body: [body],
});
const DEADLINES: [string, string][] = [
  ["connect-timeout-ms", "500"],
  ["grpc-timeout", "500m"],
];

const remove = method("Filesystem", "Remove");
const binaryOf = (desc: DescMessage, init: object): Uint8Array => toBinary(desc, create(desc, init as never));
const jsonOf = (desc: DescMessage, init: object): Uint8Array => new TextEncoder().encode(toJsonString(desc, create(desc, init as never)));

describe("the safety gate", () => {
  it("paths: strictly below scratch once resolved", () => {
    expect(insideScratch(`${ctx.scratch}/a`, ctx.scratch)).toBe(true);
    expect(insideScratch(`${ctx.scratch}/dir/../a`, ctx.scratch)).toBe(true);
    for (const outside of [ctx.scratch, `${ctx.scratch}/..`, `${ctx.scratch}/a/../../x`, `${ctx.scratch}x/a`, "", "~", "~/x", "relative", "/", "/tmp"]) {
      expect(insideScratch(outside, ctx.scratch), outside).toBe(false);
    }
  });

  it("an empty body, and an empty frame, are a Remove of the home directory", () => {
    expect(unsafeRequest(spec(new Uint8Array(0)), remove, ctx)).toMatch(/outside the scratch/);
    expect(unsafeRequest(spec(frame(0, new Uint8Array(0))), remove, ctx)).toMatch(/outside the scratch/);
  });

  it("reads binary, JSON, frames, gzip, cut bodies and the GET query", () => {
    const root = { path: "/" } satisfies Partial<RemoveRequest>;
    const inside = { path: `${ctx.scratch}/a` } satisfies Partial<RemoveRequest>;
    expect(unsafeRequest(spec(binaryOf(RemoveRequestSchema, inside)), remove, ctx)).toBeUndefined();
    expect(unsafeRequest(spec(jsonOf(RemoveRequestSchema, inside)), remove, ctx)).toBeUndefined();
    expect(unsafeRequest(spec(binaryOf(RemoveRequestSchema, root)), remove, ctx)).toBeDefined();
    expect(unsafeRequest(spec(jsonOf(RemoveRequestSchema, root)), remove, ctx)).toBeDefined();
    expect(unsafeRequest(spec(frame(1, gzipSync(jsonOf(RemoveRequestSchema, root)))), remove, ctx)).toBeDefined();
    expect(
      unsafeRequest(spec(Buffer.concat([frame(0, binaryOf(RemoveRequestSchema, inside)), frame(0, binaryOf(RemoveRequestSchema, root))])), remove, ctx),
    ).toBeDefined();
    const query = `message=${encodeURIComponent(Buffer.from(binaryOf(RemoveRequestSchema, root)).toString("base64url"))}&base64=1`;
    expect(unsafeRequest(spec(new Uint8Array(0), [], `/x?${query}`), remove, ctx)).toBeDefined();
    const move = method("Filesystem", "Move");
    const both: Partial<MoveRequest> = { source: `${ctx.scratch}/a`, destination: "/etc/x" };
    expect(unsafeRequest(spec(binaryOf(MoveRequestSchema, both)), move, ctx)).toBeDefined();
    // A body cut short is read as the agent may see it (over HTTP/2 it is a complete, shorter
    // body): cut after the source, the destination is "", the home directory.
    const source = binaryOf(MoveRequestSchema, { source: `${ctx.scratch}/a` });
    const whole = spec(binaryOf(MoveRequestSchema, { source: `${ctx.scratch}/a`, destination: `${ctx.scratch}/b` }));
    expect(unsafeRequest(whole, move, ctx)).toBeUndefined();
    expect(unsafeRequest({ ...whole, cutAfter: source.length }, move, ctx)).toMatch(/outside the scratch/);
  });

  it("processes: only the allow-list, and waiting ones only with short deadlines", () => {
    const start = method("Process", "Start");
    const startOf = (init: Partial<StartRequest> | object) => binaryOf(StartRequestSchema, init);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "echo", args: ["hi"] } })), start, ctx)).toBeUndefined();
    expect(unsafeRequest(spec(startOf({ process: { cmd: "rm", args: ["-rf", "/"] } })), start, ctx)).toMatch(/allow-list/);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "sh", args: [] } })), start, ctx)).toMatch(/not allowed/);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "bash", args: ["-c", "rm -rf /"] } })), start, ctx)).toMatch(/not allowed/);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "echo", envs: { LD_PRELOAD: "/x.so" } } })), start, ctx)).toMatch(/LD_PRELOAD/);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "echo", envs: { "PATH=x": "y" } } })), start, ctx)).toMatch(/PATH/);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "cat" } })), start, ctx)).toMatch(/short deadline/);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "cat" } }), [["connect-timeout-ms", "500"]]), start, ctx)).toMatch(/short deadline/);
    expect(
      unsafeRequest(
        spec(startOf({ process: { cmd: "cat" } }), [
          ["connect-timeout-ms", "60000"],
          ["grpc-timeout", "1S"],
        ]),
        start,
        ctx,
      ),
    ).toMatch(/short deadline/);
    expect(unsafeRequest(spec(startOf({ process: { cmd: "cat" } }), DEADLINES), start, ctx)).toBeUndefined();
    // A malformed deadline makes the agent refuse the call before it starts anything.
    expect(
      unsafeRequest(
        spec(startOf({ process: { cmd: "cat" } }), [
          ["connect-timeout-ms", "x"],
          ["grpc-timeout", "500m"],
        ]),
        start,
        ctx,
      ),
    ).toBeUndefined();
  });

  it("code: only bash snippets, never a kernel", () => {
    const execute = method("ExecutionService", "Execute");
    const of = (init: Partial<ExecuteRequest>) => spec(binaryOf(ExecuteRequestSchema, init), DEADLINES);
    expect(unsafeRequest(of({ language: "python", code: "import os" }), execute, ctx)).toMatch(/python/);
    expect(unsafeRequest(of({ language: "", code: "1" }), execute, ctx)).toMatch(/python/);
    expect(unsafeRequest(of({ language: " BASH ", code: "rm -rf ~" }), execute, ctx)).toMatch(/bash/);
    expect(unsafeRequest(of({ language: "bash", code: "echo hi" }), execute, ctx)).toBeUndefined();
    expect(unsafeRequest(of({ language: "cobol", code: "anything" }), execute, ctx)).toBeUndefined();
    expect(unsafeRequest(of({ language: "python", code: "anything", contextId: "not-a-real-id" }), execute, ctx)).toBeUndefined();
    const createContext = method("ContextService", "CreateContext");
    expect(unsafeRequest(spec(new Uint8Array(0)), createContext, ctx)).toMatch(/python/);
  });

  it("an RPC without a rule: every string must be a path in scratch", () => {
    const unknown = { name: "Erase", parent: { typeName: "sandboxagent.Future" } } as unknown as DescMethod;
    expect(hasRule(unknown)).toBe(false);
    const rule = ruleFor(unknown);
    expect(rule.unsafe?.(create(MoveRequestSchema, { source: `${ctx.scratch}/a` }), ctx, MoveRequestSchema)).toMatch(/outside scratch/);
    expect(rule.unsafe?.(create(MoveRequestSchema, { source: `${ctx.scratch}/a`, destination: `${ctx.scratch}/b` }), ctx, MoveRequestSchema)).toBeUndefined();
  });
});

describe("the generators", () => {
  it("find every RPC of every served service by reflection", () => {
    expect(servedMethods().length).toBe(SERVED_SERVICES.reduce((n, s) => n + s.methods.length, 0));
    expect(servedMethods().every(hasRule)).toBe(true);
  });

  for (const family of CONNECT_FAMILIES) {
    it(`${family}: reach every RPC, and every request passes the gate`, () => {
      const seen = new Set<string>();
      for (const request of fc.sample(connectFamily(ctx, family), { numRuns: 400 })) {
        const path = request.target.split("?")[0]!;
        seen.add(path);
        const rpc = servedMethods().find((m) => path === `/${m.parent.typeName}/${m.name}`);
        expect(rpc, path).toBeDefined();
        expect(unsafeRequest(request, rpc!, ctx)).toBeUndefined();
        expect(request.family).toBe(family);
      }
      expect(seen.size).toBe(servedMethods().length);
    }, 120_000);
  }
});
