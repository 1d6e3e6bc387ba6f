/**
 * harness/request.ts judges RPC answers: a gRPC, gRPC-web or Connect-streaming response that ends
 * without its status is a fault (clients report it as a server error), whether the server sent
 * no trailers, no trailer frame, no end-of-stream frame, or an empty 200 with no content type.
 * A stand-in server answers each way here; no agent is involved.
 */
import { createServer as createH2Server, type Http2Server } from "node:http2";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { faultOf, send, type RequestSpec } from "../../../harness/request.js";

const frame = (flags: number, text: string): Buffer => {
  const payload = Buffer.from(text);
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, 5);
  return out;
};

/** What the stand-in answers, by request path. */
const ANSWERS: Readonly<Record<string, { type?: string; body: Buffer; trailers?: Record<string, string> }>> = {
  "/grpc-ok": { type: "application/grpc", body: frame(0, "x"), trailers: { "grpc-status": "0" } },
  "/grpc-no-trailers": { type: "application/grpc", body: frame(0, "x") },
  "/grpc-web-ok": { type: "application/grpc-web+proto", body: Buffer.concat([frame(0, "x"), frame(0x80, "grpc-status: 0\r\n")]) },
  "/grpc-web-no-trailer-frame": { type: "application/grpc-web+proto", body: frame(0, "x") },
  "/connect-ok": { type: "application/connect+json", body: Buffer.concat([frame(0, "{}"), frame(0x02, "{}")]) },
  "/connect-no-end": { type: "application/connect+json", body: frame(0, "{}") },
  "/empty-200": { body: Buffer.alloc(0) },
};

let h1: Server;
let h2: Http2Server;
let h1Url: string;
let h2Url: string;
beforeAll(async () => {
  h1 = createServer((req, res) => {
    const answer = ANSWERS[req.url ?? ""]!;
    req.resume();
    req.on("end", () => {
      res.writeHead(200, answer.type === undefined ? {} : { "content-type": answer.type });
      res.end(answer.body);
    });
  });
  h2 = createH2Server();
  h2.on("stream", (stream, headers) => {
    const answer = ANSWERS[String(headers[":path"])]!;
    stream.resume();
    stream.on("end", () => {
      stream.respond(
        { ":status": 200, ...(answer.type === undefined ? {} : { "content-type": answer.type }) },
        { waitForTrailers: answer.trailers !== undefined },
      );
      if (answer.trailers !== undefined) stream.on("wantTrailers", () => stream.sendTrailers(answer.trailers!));
      stream.end(answer.body);
    });
  });
  await Promise.all([new Promise<void>((r) => h1.listen(0, "127.0.0.1", r)), new Promise<void>((r) => h2.listen(0, "127.0.0.1", r))]);
  h1Url = `http://127.0.0.1:${(h1.address() as AddressInfo).port}`;
  h2Url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await Promise.all([new Promise((r) => h1?.close(r)), new Promise((r) => h2?.close(r))]);
});

const request = (transport: "http1" | "h2", path: string, contentType: string): RequestSpec => ({
  family: "test",
  transport,
  method: "POST",
  target: path,
  headers: [["content-type", contentType]],
  body: [frame(0, "{}")],
});

describe("a streaming answer without its status is a fault", () => {
  const cases: [transport: "http1" | "h2", path: string, requestType: string, fault: boolean][] = [
    ["h2", "/grpc-ok", "application/grpc", false],
    ["h2", "/grpc-no-trailers", "application/grpc", true],
    ["http1", "/grpc-web-ok", "application/grpc-web+proto", false],
    ["http1", "/grpc-web-no-trailer-frame", "application/grpc-web+proto", true],
    ["h2", "/grpc-web-no-trailer-frame", "application/grpc-web+proto", true],
    ["http1", "/connect-ok", "application/connect+json", false],
    ["http1", "/connect-no-end", "application/connect+json", true],
    ["h2", "/empty-200", "application/grpc-web+json", true],
    ["http1", "/empty-200", "application/connect+proto", true],
    ["http1", "/empty-200", "application/json", false],
  ];
  for (const [transport, path, requestType, fault] of cases) {
    it(`${transport} ${path} for ${requestType}: ${fault ? "fault" : "fine"}`, async () => {
      const spec = request(transport, path, requestType);
      const outcome = await send(transport === "h2" ? h2Url : h1Url, spec, { timeoutMs: 5_000 });
      expect(outcome.status).toBe(200);
      expect(faultOf(spec, outcome)).toBe(fault ? "the response ended without a status" : undefined);
      // A client that cut its own request short is not owed a status.
      expect(faultOf({ ...spec, cutAfter: 1 }, outcome)).toBeUndefined();
    });
  }
});
