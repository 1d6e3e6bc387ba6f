/**
 * Drives the official @scalebox/sdk against a local agent. The SDK creates sandboxes through the
 * control plane, so a tiny stand-in answers it with the agent's address and token. The SDK dials
 * RPCs over http:// for 127.0.0.1 and files over https://: the agent serves both on one port, with
 * the test certificate (trusted here through NODE_TLS_REJECT_UNAUTHORIZED=0 for this process).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { TestAgent } from "./agent.js";

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
