import { readFile } from "node:fs/promises";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Filesystem, FileType } from "../../../src/gen/sandboxagent/api_pb.js";
import { sniff } from "../../../src/net/one-port.js";
import { AUTH, client, startTestAgent, TRANSPORT_NAMES, type TestAgent } from "../../helpers/agent.js";

let agent: TestAgent;
let ca: Buffer;
beforeAll(async () => {
  agent = await startTestAgent();
  ca = await readFile(new URL("../../fixtures/tls/cert.pem", import.meta.url));
});
afterAll(async () => agent?.close());

describe("one port, every protocol", () => {
  it.each(TRANSPORT_NAMES)("serves RPCs over %s", async (name) => {
    const fs = client(Filesystem, agent.url, name);
    const res = await fs.stat({ path: "/" }, { headers: AUTH });
    expect(res.entry?.type).toBe(FileType.DIRECTORY);
    expect(res.entry?.path).toBe("/");
  });

  it.each(["connect-h2", "connect-json-h1", "grpc"] as const)("serves RPCs over TLS with %s", async (name) => {
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
    try {
      const fs = client(Filesystem, agent.tlsUrl, name);
      const res = await fs.stat({ path: "/" }, { headers: AUTH });
      expect(res.entry?.type).toBe(FileType.DIRECTORY);
    } finally {
      delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    }
  });

  it("serves plain HTTP/1.1, h2c and TLS (h1 and h2 by ALPN)", async () => {
    const plain = await fetch(`${agent.url}/health`);
    expect(plain.status).toBe(200);
    expect(await plain.text()).toBe("OK");

    const h2cBody = await h2Get(http2.connect(agent.url), "/health");
    expect(h2cBody).toEqual({ status: 200, body: "OK" });

    const tlsH2 = await h2Get(http2.connect(agent.tlsUrl, { ca }), "/health");
    expect(tlsH2).toEqual({ status: 200, body: "OK" });

    const tlsH1 = await new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
      const req = https.get(`${agent.tlsUrl}/health`, { ca, ALPNProtocols: ["http/1.1"] } as https.RequestOptions, (res) => {
        let body = "";
        const alpn = (res.socket as TLSSocket).alpnProtocol;
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, alpn }));
      });
      req.on("error", reject);
    });
    expect(tlsH1.status).toBe(200);
    expect(tlsH1.body).toBe("OK");
    expect(tlsH1.alpn).toBe("http/1.1");
  });

  it("answers garbage with an HTTP error and keeps serving", async () => {
    const reply = await rawExchange(agent.port, "NOT-HTTP at all\r\n\r\n");
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await fetch(`${agent.url}/health`)).status).toBe(200);
  });

  it("drops a connection that sends a truncated HTTP/2 preface and nothing else when it closes", async () => {
    const socket = net.connect(agent.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.end("PRI * HTTP/2.0\r\n");
    await new Promise((resolve) => socket.once("close", resolve));
    expect((await fetch(`${agent.url}/health`)).status).toBe(200);
  });
});

describe("protocol sniffing", () => {
  it("tells protocols apart from the first bytes, waiting on a partial preface", () => {
    expect(sniff(Buffer.from([0x16, 0x03, 0x01]))).toBe("tls");
    expect(sniff(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))).toBe("h2c");
    expect(sniff(Buffer.from("PRI * HT"))).toBe("undecided");
    expect(sniff(Buffer.from("P"))).toBe("undecided");
    expect(sniff(Buffer.from("POST / HTTP/1.1"))).toBe("http1");
    expect(sniff(Buffer.from("GET / HTTP/1.1"))).toBe("http1");
    expect(sniff(Buffer.alloc(0))).toBe("undecided");
  });
});

function h2Get(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    session.on("error", reject);
    const req = session.request({ ":path": path });
    let status = 0;
    let body = "";
    req.on("response", (headers) => (status = Number(headers[":status"])));
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      session.close();
      resolve({ status, body });
    });
    req.on("error", reject);
  });
}

function rawExchange(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(payload));
    let data = "";
    socket.on("data", (chunk) => (data += chunk.toString()));
    socket.on("close", () => resolve(data));
    socket.on("error", reject);
  });
}
