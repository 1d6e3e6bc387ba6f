/**
 * Drives the official @scalebox/sdk against a local agent. The SDK creates sandboxes through the
 * control plane, so a tiny stand-in answers it with the agent's address and token. The SDK dials
 * RPCs over http:// for 127.0.0.1 and files over https://: the agent serves both on one port, with
 * the test certificate (trusted here through NODE_TLS_REJECT_UNAUTHORIZED=0 for this process).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { startTestAgent, type TestAgent } from "./agent.js";

export interface ControlPlane {
  readonly url: string;
  readonly close: () => Promise<void>;
}

export async function startControlPlane(agent: TestAgent): Promise<ControlPlane> {
  const sandbox = {
    sandbox_id: "sbx-local",
    sandbox_domain: `127.0.0.1:${agent.port}`,
    envd_access_token: agent.token,
    status: "running",
    template_id: "base",
    timeout: 3600,
  };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0] ?? "";
      const isSandbox =
        (req.method === "POST" && (path === "/v1/sandboxes" || /^\/v1\/sandboxes\/[^/]+\/connect$/.test(path))) ||
        (req.method === "GET" && /^\/v1\/sandboxes\/[^/]+$/.test(path));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ data: isSandbox ? sandbox : {} }));
    });
  });
  return serveOnLoopback(server);
}

/** Listens on a free loopback port; `close` also ends the connections clients keep open. */
export async function serveOnLoopback(server: http.Server): Promise<{ readonly url: string; readonly close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Environment the SDK reads; set before importing it. */
export function sdkEnvironment(controlPlane: ControlPlane): void {
  process.env.SCALEBOX_API_URL = controlPlane.url;
  process.env.SCALEBOX_API_KEY = "local-test-key";
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
}

export type SdkSandbox = Awaited<ReturnType<typeof import("@scalebox/sdk")["Sandbox"]["create"]>>;

export interface SdkSession {
  readonly agent: TestAgent;
  readonly sandbox: SdkSandbox;
  readonly close: () => Promise<void>;
}

/** A real agent, the control-plane stand-in, and an SDK sandbox connected to them. */
export async function startSdkSession(overrides: Parameters<typeof startTestAgent>[0] = {}): Promise<SdkSession> {
  const agent = await startTestAgent(overrides);
  const controlPlane = await startControlPlane(agent);
  sdkEnvironment(controlPlane);
  const { Sandbox } = await import("@scalebox/sdk");
  const sandbox = await Sandbox.create("base");
  return {
    agent,
    sandbox,
    close: async () => {
      await controlPlane.close();
      await agent.close();
    },
  };
}
