/**
 * HTTP/2: an answer given before the request body was read to its end still lets the stream, the
 * session and the socket go. Before the fix the stream waited for its unread rest forever: once
 * the client closed its session, the agent's side of the connection sat in CLOSE_WAIT for good,
 * one descriptor lost per request (found by the fuzz campaign). The client here sends a first
 * message the agent refuses, then the rest of the body once the refusal is out, so the agent has
 * begun reading and stopped, which is the case Node does not clean up by itself.
 */
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tcpStates, TCP_CLOSE_WAIT } from "../../../harness/probe.js";
import { AUTH, eventually, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { boundary } from "../../helpers/form.js";

let agent: TestAgent;
beforeAll(async () => {
  agent = await startTestAgent();
});
afterAll(async () => agent?.close());

function envelope(text: string): Buffer {
  const payload = Buffer.from(text);
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, 5);
  return out;
}

interface Exchange {
  readonly status: number;
  readonly body: string;
  readonly trailers: Record<string, string>;
  /** The RST_STREAM code the client's stream closed with (0 = NO_ERROR). */
  readonly rstCode: number;
  readonly clientPort: number;
}

/**
 * Sends `first`, waits for the agent's complete answer, then (if the stream is still open) the
 * rest, and closes the session. Resolves once the client's stream has closed.
 */
async function refusedEarly(path: string, headers: Record<string, string>, first: Buffer, rest: Buffer): Promise<Exchange> {
  const session = http2.connect(agent.url);
  try {
    await new Promise<void>((resolve, reject) => session.once("connect", () => resolve()).once("error", reject));
    const clientPort = session.socket.localPort!;
    const stream = session.request({ ":method": "POST", ":path": path, ...AUTH, ...headers });
    let status = 0;
    const trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("trailers", (t) => Object.assign(trailers, t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => undefined);
    const answered = new Promise<void>((resolve) => stream.once("end", () => resolve()));
    const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
    stream.write(first);
    await answered;
    // The rest after the answer: the agent read the first part, answered, and stopped reading.
    if (!stream.closed) stream.end(rest);
    await closed;
    return { status, body: Buffer.concat(chunks).toString("latin1"), trailers, rstCode: stream.rstCode ?? -1, clientPort };
  } finally {
    session.close();
  }
}

/** The agent's side of the connection is gone (not left in CLOSE_WAIT) once the client has left. */
async function expectConnectionReleased(clientPort: number): Promise<void> {
  const agentSide = () => tcpStates(Number(new URL(agent.url).port), clientPort);
  await eventually(async () => (await agentSide()).length === 0, 5_000).catch(async () => {
    const states = await agentSide();
    throw new Error(
      `the agent still holds the connection from port ${clientPort} (TCP state ${states.join(", ")}${states.includes(TCP_CLOSE_WAIT) ? ": CLOSE_WAIT" : ""})`,
    );
  });
}

describe("HTTP/2 requests answered before their body was read to the end", () => {
  it.each([
    ["application/connect+json", (a: Exchange) => expect(a.body).toContain('"code":"invalid_argument"')],
    ["application/grpc+json", (a: Exchange) => expect(a.trailers["grpc-status"]).toBe("3")],
    ["application/grpc-web+json", (a: Exchange) => expect(a.body).toContain("grpc-status: 3")],
  ] as const)("%s: the whole refusal arrives, the stream is reset with NO_ERROR, and the connection is let go", async (contentType, expectRefusal) => {
    const answer = await refusedEarly(
      "/sandboxagent.Process/Start",
      { "content-type": contentType, "connect-protocol-version": "1", te: "trailers" },
      envelope("{not json"),
      Buffer.concat([envelope('{"process":{"cmd":"true"}}'), Buffer.alloc(20_000, 0x41)]),
    );
    expect(answer.status).toBe(200);
    expectRefusal(answer);
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await expectConnectionReleased(answer.clientPort);
  });

  it("a refused upload: the 400 arrives whole, the client is told to stop sending, and the connection is let go", async () => {
    const b = boundary();
    // A part header without the blank line that ends it, then far more than a window of bytes.
    const answer = await refusedEarly(
      "/upload?path=/tmp/agent-h2-unread-body.bin",
      { "content-type": `multipart/form-data; boundary=${b}` },
      Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n${"X".repeat(100_000)}`),
      Buffer.alloc(1 << 20, 0x41),
    );
    expect(answer.status).toBe(400);
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await expectConnectionReleased(answer.clientPort);
  });

  it("an answer to a body read to its end is untouched", async () => {
    const session = http2.connect(agent.url);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/sandboxagent.Filesystem/Stat", ...AUTH, "content-type": "application/json" });
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      await new Promise<void>((resolve) => stream.end(JSON.stringify({ path: "/" })).once("close", () => resolve()));
      expect(JSON.parse(Buffer.concat(chunks).toString()).entry.path).toBe("/");
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      session.close();
    }
  });
});
