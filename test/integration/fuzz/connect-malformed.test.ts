/**
 * Regressions found by the Connect fuzz properties (harness/arbitraries/connect.ts):
 *
 * 1. A request whose message does not decode is the client's fault: `invalid_argument` on every
 *    protocol (Connect unary and streaming, gRPC, gRPC-web), codec (JSON, binary) and RPC kind
 *    (unary, server stream, client stream). connect-es answered binary ones, frames flagged
 *    compressed without an encoding and truncated gzip with `internal` (src/services/client-faults.ts).
 * 2. A deadline longer than 2^31 - 1 ms (24.8 days) ended the call after 1 ms: Node's setTimeout
 *    turns longer delays into 1 ms (src/services/deadlines.ts).
 * 3. A JSON value with an unpaired surrogate escape where another type belongs ({"process":
 *    "\ud800"}) made the gRPC and gRPC-web answers end without any status (HTTP/2: an empty 200;
 *    HTTP/1.1: no answer at all): the error message quoted it and encodeURIComponent threw
 *    (src/services/json-input.ts).
 * 4. JSON that does not parse and holds characters outside the BMP did the same: V8's parse error
 *    quotes an excerpt cut by UTF-16 units, which split a surrogate pair (found by the live
 *    campaign, `npm run fuzz`; src/services/json-input.ts).
 * 5. JSON nested millions deep (15 MB of `[`) took the agent to 1.1 GB and blocked its event loop
 *    for seconds inside JSON.parse before protobuf-es refused it; it is now refused by a scan for
 *    its depth (found by the live campaign's memory watch; src/services/json-input.ts).
 * 6. An error message quoting a huge request field (a 200 KiB context id) became a gRPC trailer
 *    too large for clients: the stream was reset instead of answering not_found
 *    (src/services/grpc-trailers.ts).
 */
import { gzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService } from "../../../src/gen/sandboxagent/api_pb.js";
import { MAX_ENCODED_BYTES } from "../../../src/services/connect-fixes/grpc-trailers.js";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { blameClientForMalformedRequests } from "../../../src/services/connect-fixes/client-faults.js";
import { jsonRequestDecoder, MAX_JSON_DEPTH } from "../../../src/services/connect-fixes/json-input.js";
import { send, type Outcome, type RequestSpec } from "../../../harness/request.js";
import { client, startTestAgent, type TestAgent } from "../../helpers/agent.js";

let agent: TestAgent;
beforeAll(async () => {
  agent = await startTestAgent({ kernelPoolSize: 0 });
});
afterAll(async () => {
  await agent?.close();
});

const frame = (flags: number, payload: Uint8Array): Buffer => {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  Buffer.from(payload).copy(out, 5);
  return out;
};

type Shape = "connect-unary" | "connect-stream" | "grpc" | "grpc-web";
type Codec = "json" | "proto";

const CONTENT_TYPE: Readonly<Record<Shape, Readonly<Record<Codec, string>>>> = {
  "connect-unary": { json: "application/json", proto: "application/proto" },
  "connect-stream": { json: "application/connect+json", proto: "application/connect+proto" },
  grpc: { json: "application/grpc+json", proto: "application/grpc+proto" },
  "grpc-web": { json: "application/grpc-web+json", proto: "application/grpc-web+proto" },
};

function call(
  shape: Shape,
  codec: Codec,
  rpc: string,
  body: Uint8Array,
  extraHeaders: [string, string][] = [],
  transport: "http1" | "h2" = shape === "grpc" ? "h2" : "http1",
): Promise<Outcome> {
  const headers: [string, string][] = [["x-access-token", agent.token], ["content-type", CONTENT_TYPE[shape][codec]], ...extraHeaders];
  if (shape.startsWith("connect")) headers.push(["connect-protocol-version", "1"]);
  if (shape === "grpc") headers.push(["te", "trailers"]);
  // An RPC named with its package (envd's faces) is sent as named; a bare one is the agent's own.
  const target = rpc.includes(".") ? `/${rpc}` : `/sandboxagent.${rpc}`;
  const spec: RequestSpec = { family: "regression", transport, method: "POST", target, headers, body: [body] };
  return send(agent.url, spec, { timeoutMs: 10_000 });
}

/** Bytes that are no message: field number 0 in binary, and not JSON. */
const NOT_BINARY = Uint8Array.of(0x01, 0x02, 0x03);
const NOT_JSON = new TextEncoder().encode('{"path": ');

/** RPCs of each kind, by the shapes that can carry them (Connect unary only for unary RPCs). */
const CASES: readonly { readonly rpc: string; readonly shapes: readonly Shape[] }[] = [
  { rpc: "Filesystem/Stat", shapes: ["connect-unary", "grpc", "grpc-web"] },
  { rpc: "Filesystem/WatchDir", shapes: ["connect-stream", "grpc", "grpc-web"] },
  { rpc: "Process/StreamInput", shapes: ["connect-stream", "grpc", "grpc-web"] },
];

describe("a message that does not decode is invalid_argument", () => {
  for (const { rpc, shapes } of CASES) {
    for (const shape of shapes) {
      for (const codec of ["proto", "json"] as const) {
        it(`${rpc} over ${shape}, ${codec}`, async () => {
          const message = codec === "proto" ? NOT_BINARY : NOT_JSON;
          const outcome = await call(shape, codec, rpc, shape === "connect-unary" ? message : frame(0, message));
          expect(outcome.code, outcome.excerpt).toBe("invalid_argument");
          if (shape === "connect-unary") expect(outcome.status).toBe(400);
        });
      }
    }
  }
});

describe("JSON that no binary message can hold", () => {
  // Found by the fuzz campaign: an enum of 1e300 decodes from JSON but cannot be encoded, and
  // envd's face converts each request by its encoding (src/e2b/bridge.ts).
  const body = new TextEncoder().encode(JSON.stringify({ process: { tag: "none" } }).replace("}}", '},"signal":1e+300}'));
  for (const rpc of ["process.Process/SendSignal", "Process/SendSignal"]) {
    for (const shape of ["connect-unary", "grpc"] as const) {
      it(`${rpc} over ${shape} is refused as the client's fault`, async () => {
        const outcome = await call(shape, "json", rpc, shape === "connect-unary" ? body : frame(0, body));
        expect(outcome.code, outcome.excerpt).toBe("invalid_argument");
      });
    }
  }
});

describe("compression the request gets wrong is invalid_argument", () => {
  const stat = new TextEncoder().encode('{"path":"/"}');
  for (const shape of ["connect-stream", "grpc", "grpc-web"] as const) {
    const rpc = shape === "connect-stream" ? "Filesystem/WatchDir" : "Filesystem/Stat";
    const encoding = shape === "connect-stream" ? "connect-content-encoding" : "grpc-encoding";
    it(`${shape}: a frame flagged compressed on a request that names no encoding`, async () => {
      expect((await call(shape, "json", rpc, frame(0x01, stat))).code).toBe("invalid_argument");
    });
    it(`${shape}: a gzip frame cut short`, async () => {
      const outcome = await call(shape, "json", rpc, frame(0x01, gzipSync(stat).subarray(0, 12)), [[encoding, "gzip"]]);
      expect(outcome.code).toBe("invalid_argument");
    });
  }
  it("connect-unary: a gzip body cut short", async () => {
    const outcome = await call("connect-unary", "json", "Filesystem/Stat", gzipSync(stat).subarray(0, 12), [["content-encoding", "gzip"]]);
    expect(outcome.code).toBe("invalid_argument");
    expect(outcome.status).toBe(400);
  });
  it("a well-formed compressed request still works", async () => {
    const outcome = await call("grpc", "json", "Filesystem/Stat", frame(0x01, gzipSync(stat)), [["grpc-encoding", "gzip"]]);
    expect(outcome.code).toBe("ok");
  });
});

describe("other internal errors keep their code", () => {
  const unaryError = (message: string): UniversalServerResponse => ({
    status: 500,
    header: new Headers({ "content-type": "application/json" }),
    body: (async function* () {
      yield new TextEncoder().encode(JSON.stringify({ code: "internal", message }));
    })(),
  });
  const bodyOf = async (res: UniversalServerResponse): Promise<string> => {
    let text = "";
    for await (const chunk of res.body ?? []) text += new TextDecoder().decode(chunk);
    return text;
  };
  it("a server fault stays internal; a parse failure becomes invalid_argument", async () => {
    const fault = await blameClientForMalformedRequests(async () => unaryError("serialize binary: boom"), {} as never)({} as never);
    expect(fault.status).toBe(500);
    expect(JSON.parse(await bodyOf(fault))).toMatchObject({ code: "internal" });
    const parse = await blameClientForMalformedRequests(async () => unaryError("parse binary: premature EOF"), {} as never)({} as never);
    expect(parse.status).toBe(400);
    expect(JSON.parse(await bodyOf(parse))).toMatchObject({ code: "invalid_argument", message: "parse binary: premature EOF" });
  });
});

describe("a JSON string with an unpaired surrogate escape", () => {
  const json = (text: string) => new TextEncoder().encode(text);
  for (const { rpc, shapes } of CASES) {
    for (const shape of shapes) {
      for (const transport of shape === "grpc" ? (["h2"] as const) : (["http1", "h2"] as const)) {
        it(`${rpc} over ${shape} (${transport}): invalid_argument, with a status`, async () => {
          // A string where a message belongs: protobuf-es's error quotes the value.
          const message = json(rpc === "Process/StreamInput" ? '{"start":"\\ud800"}' : '"\\udc00x"');
          const outcome = await call(shape, "json", rpc, shape === "connect-unary" ? message : frame(0, message), [], transport);
          expect(outcome.timedOut).toBeUndefined();
          expect(outcome.missingStatus).toBeUndefined();
          expect(outcome.code, outcome.excerpt).toBe("invalid_argument");
        });
      }
    }
  }
  it("the decoder refuses only unpaired surrogates", () => {
    expect(() => jsonRequestDecoder.decode(json('{"process":"\\ud800"}'))).toThrow(/unpaired UTF-16 surrogate/);
    expect(() => jsonRequestDecoder.decode(json('{"\\udfff":1}'))).toThrow(/unpaired UTF-16 surrogate/);
    expect(jsonRequestDecoder.decode(json('{"path":"\\ud83d\\ude00"}'))).toBe('{"path":"\\ud83d\\ude00"}');
    expect(jsonRequestDecoder.decode(json('{"path":"\\\\ud800"}'))).toBe('{"path":"\\\\ud800"}');
    expect(() => jsonRequestDecoder.decode(json("not json \\ud800"))).toThrow(/cannot decode message from JSON/);
  });
});

describe("JSON that does not parse, with characters outside the BMP", () => {
  /** Invalid JSON whose parse error quotes the text just before the NaN: one of these cuts a pair. */
  const texts = [0, 1, 2, 3].map((pad) => `{"tag":"${"\u{1F600}".repeat(20)}${"a".repeat(pad)}","pty":NaN}`);
  const parseError = (text: string): string => {
    try {
      JSON.parse(text);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error(`parsed: ${text}`);
  };
  it("is a case V8 quotes with a split pair (the premise of this test)", () => {
    expect(texts.some((text) => encodeURIComponentFails(parseError(text)))).toBe(true);
  });
  it("the decoder refuses it with a message that can be percent-encoded", () => {
    for (const text of texts) {
      let message = "";
      try {
        jsonRequestDecoder.decode(new TextEncoder().encode(text));
      } catch (e) {
        message = (e as ConnectError).rawMessage;
      }
      expect(message).toMatch(/^cannot decode message from JSON: /);
      expect(encodeURIComponentFails(message), message).toBe(false);
    }
  });
  for (const shape of ["connect-unary", "connect-stream", "grpc", "grpc-web"] as const) {
    const rpc = shape === "connect-stream" ? "Filesystem/WatchDir" : "Process/Update";
    for (const transport of shape === "grpc" ? (["h2"] as const) : (["http1", "h2"] as const)) {
      it(`${rpc} over ${shape} (${transport}): invalid_argument, with a status`, async () => {
        for (const text of texts) {
          const message = new TextEncoder().encode(text);
          const outcome = await call(shape, "json", rpc, shape === "connect-unary" ? message : frame(0, message), [], transport);
          expect(outcome.timedOut).toBeUndefined();
          expect(outcome.missingStatus).toBeUndefined();
          expect(outcome.code, outcome.excerpt).toBe("invalid_argument");
        }
      });
    }
  }
});

function encodeURIComponentFails(text: string): boolean {
  try {
    encodeURIComponent(text);
    return false;
  } catch {
    return true;
  }
}

describe("JSON nested deeper than any request message", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const nested = (depth: number, inner = "") => `${"[".repeat(depth)}${inner}${"]".repeat(depth)}`;
  it("the decoder refuses it before parsing, and counts only brackets outside strings", () => {
    expect(() => jsonRequestDecoder.decode(encode(`{"a":${nested(MAX_JSON_DEPTH)}}`))).toThrow(/nested more than 64 deep/);
    expect(() => jsonRequestDecoder.decode(encode(`{"a":${'{"b":'.repeat(MAX_JSON_DEPTH)}1${"}".repeat(MAX_JSON_DEPTH)}}`))).toThrow(/nested more than/);
    const atLimit = `{"a":${nested(MAX_JSON_DEPTH - 1)}}`;
    expect(jsonRequestDecoder.decode(encode(atLimit))).toBe(atLimit);
    const inStrings = JSON.stringify({ code: "[".repeat(10_000), quoted: `\\"${"{".repeat(1_000)}` });
    expect(jsonRequestDecoder.decode(encode(inStrings))).toBe(inStrings);
  });
  for (const shape of ["connect-unary", "grpc", "grpc-web"] as const) {
    it(`Filesystem/Stat over ${shape}: 2,000,000 levels are invalid_argument, refused for their depth`, async () => {
      const message = encode(nested(2_000_000));
      const outcome = await call(shape, "json", "Filesystem/Stat", shape === "connect-unary" ? message : frame(0, message));
      expect(outcome.code, outcome.excerpt).toBe("invalid_argument");
      // gRPC carries the message in trailers, which an Outcome does not keep; the others in the body.
      if (shape !== "grpc") expect(decodeURIComponent(outcome.excerpt)).toContain(`nested more than ${MAX_JSON_DEPTH} deep`);
    });
  }
});

describe("a deadline longer than a timer can hold", () => {
  const sleep = new TextEncoder().encode(JSON.stringify({ process: { cmd: "sleep", args: ["0.2"] } }));
  it("Connect: 9999999999 ms lets the command run to its end", async () => {
    const outcome = await call("connect-stream", "json", "Process/Start", frame(0, sleep), [["connect-timeout-ms", "9999999999"]]);
    expect(outcome.code, outcome.excerpt).toBeUndefined();
    expect(outcome.excerpt).toContain("exit status 0");
  });
  it("gRPC: 99999999H lets the command run to its end", async () => {
    const outcome = await call("grpc", "json", "Process/Start", frame(0, sleep), [["grpc-timeout", "99999999H"]]);
    expect(outcome.code, outcome.excerpt).toBe("ok");
    expect(outcome.excerpt).toContain("exit status 0");
  });
  it("a short deadline still ends the command", async () => {
    const long = new TextEncoder().encode(JSON.stringify({ process: { cmd: "sleep", args: ["30"] } }));
    const outcome = await call("connect-stream", "json", "Process/Start", frame(0, long), [["connect-timeout-ms", "300"]]);
    expect(outcome.code).toBe("deadline_exceeded");
  });
});

describe("a gRPC status message quoting a huge request field", () => {
  const contextId = `${"x".repeat(200_000)}é\u{1F600}`;
  it("is cut to fit the trailers, so the client still learns the code", async () => {
    const err = await client(ContextService, agent.url, "grpc")
      .destroyContext({ contextId }, { headers: { "x-access-token": agent.token } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect(encodeURIComponent((err as ConnectError).rawMessage).length).toBeLessThanOrEqual(MAX_ENCODED_BYTES);
    expect((err as ConnectError).rawMessage).toMatch(/^context "xxx.*\(message truncated\)$/);
  });
  it("gRPC-web and Connect keep it whole", async () => {
    for (const name of ["grpc-web", "connect-json-h1"] as const) {
      const err = await client(ContextService, agent.url, name)
        .destroyContext({ contextId }, { headers: { "x-access-token": agent.token } })
        .catch((e: unknown) => e);
      expect((err as ConnectError).code).toBe(Code.NotFound);
      expect((err as ConnectError).rawMessage).toContain(contextId);
    }
  });
});
