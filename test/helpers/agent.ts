/**
 * Starts a real agent on a real loopback port for a test file, and builds clients for it over
 * every transport the agent serves.
 */
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import net from "node:net";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configWith, type Config } from "../../src/config.js";
import { startAgent, type Agent, type AgentOptions } from "../../src/server.js";

export const TOKEN = "test-token-0123456789";
export const AUTH = { "x-access-token": TOKEN } as const;

export interface TestAgent extends Agent {
  readonly token: string;
  /** `https://…` on the same port (the agent serves TLS there too). */
  readonly tlsUrl: string;
}

const fixture = (name: string): Promise<Buffer> => readFile(new URL(`../fixtures/tls/${name}`, import.meta.url));

/** A real agent on 127.0.0.1 with a random port, TLS enabled from the test certificate. */
export async function startTestAgent(overrides: Partial<Config> & Pick<AgentOptions, "logStream"> = {}): Promise<TestAgent> {
  const tls = { cert: await fixture("cert.pem"), key: await fixture("key.pem") };
  const tokenMode = (overrides.auth ?? "token") === "token";
  const agent = await startAgent({ ...configWith({ tls, ...overrides }), accessToken: tokenMode ? (overrides.accessToken ?? TOKEN) : overrides.accessToken });
  return { ...agent, token: overrides.accessToken ?? TOKEN, tlsUrl: agent.url.replace("http://", "https://") };
}

export const TRANSPORT_NAMES = ["connect-json-h1", "connect-binary-h1", "connect-h2", "grpc", "grpc-web"] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

export function transport(baseUrl: string, name: TransportName): Transport {
  switch (name) {
    case "connect-json-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false });
    case "connect-binary-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true });
    case "connect-h2":
      return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true });
    case "grpc":
      return createGrpcTransport({ baseUrl });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1" });
  }
}

export function client<S extends DescService>(service: S, baseUrl: string, name: TransportName = "connect-json-h1"): Client<S> {
  return createClient(service, transport(baseUrl, name));
}

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(prefix = "agent-test-"): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Polls `check` until it returns a truthy value or the deadline passes (no timing assertions). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A port free a moment ago: the interpreter listener takes a fixed port, 0 turning it off. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
