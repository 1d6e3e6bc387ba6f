/**
 * Drives the unmodified `e2b` and `@e2b/code-interpreter` SDKs against a local agent (docs/e2b.md,
 * "Pointing the SDKs at an agent"): a stand-in for E2B's control plane answers sandbox creation with the
 * agent's token, and E2B_SANDBOX_URL sends every envd, `/files` and code-interpreter request to the
 * agent's one port. On create the stand-in calls the agent's `POST /init` as E2B's orchestrator
 * does (token, the sandbox's env vars, default user and workdir), when the agent serves it.
 */
import http from "node:http";
import { ENVD_VERSION } from "../../src/e2b/envd-routes.js";
import { startTestAgent, type TestAgent } from "./agent.js";
import { serveOnLoopback } from "./sdk.js";

export interface E2bControlPlane {
  readonly url: string;
  /** Bodies of the sandbox-creation requests, newest last. */
  readonly created: readonly Record<string, unknown>[];
  readonly close: () => Promise<void>;
}

export interface E2bControlPlaneOptions {
  /** Call the agent's POST /init on create (default true). */
  readonly init?: boolean;
  readonly defaultUser?: string;
  readonly defaultWorkdir?: string;
}

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      try {
        resolve(chunks.length === 0 ? {} : (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>));
      } catch {
        resolve({});
      }
    });
  });
}

export async function startE2bControlPlane(agent: TestAgent, options: E2bControlPlaneOptions = {}): Promise<E2bControlPlane> {
  const created: Record<string, unknown>[] = [];
  const detail = (id: string, templateID = "base") => ({
    sandboxID: id,
    templateID,
    clientID: "local",
    envdVersion: ENVD_VERSION,
    envdAccessToken: agent.token,
    domain: null,
    trafficAccessToken: null,
    startedAt: new Date().toISOString(),
    endAt: new Date(Date.now() + 3_600_000).toISOString(),
    cpuCount: 2,
    memoryMB: 1024,
    diskSizeMB: 1024,
    state: "running",
  });
  const server = http.createServer(async (req, res) => {
    const body = await readJson(req);
    const path = (req.url ?? "").split("?")[0] ?? "";
    const reply = (status: number, value?: unknown) => {
      res.writeHead(status, value === undefined ? {} : { "content-type": "application/json" });
      res.end(value === undefined ? undefined : JSON.stringify(value));
    };
    if (req.method === "POST" && path === "/v2/sandboxes") {
      created.push(body);
      const id = `sbx${created.length}`;
      if (options.init !== false) {
        await fetch(`${agent.url}/init`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-access-token": agent.token },
          body: JSON.stringify({
            accessToken: agent.token,
            envVars: body.envVars ?? {},
            defaultUser: options.defaultUser ?? "user",
            defaultWorkdir: options.defaultWorkdir ?? "/home/user",
          }),
        }).catch(() => undefined);
      }
      return reply(201, detail(id, typeof body.templateID === "string" ? body.templateID : "base"));
    }
    if (req.method === "POST" && /^\/v2\/sandboxes\/[^/]+\/connect$/.test(path)) return reply(200, detail(path.split("/")[3]!));
    if (req.method === "GET" && /^\/sandboxes\/[^/]+$/.test(path)) return reply(200, detail(path.split("/")[2]!));
    if (req.method === "DELETE" && /^\/sandboxes\/[^/]+$/.test(path)) return reply(204);
    if (req.method === "POST" && /^\/sandboxes\/[^/]+\/timeout$/.test(path)) return reply(204);
    if (req.method === "GET" && path === "/v2/sandboxes") return reply(200, []);
    return reply(404, { code: 404, message: `the stand-in does not serve ${req.method} ${path}` });
  });
  return { ...(await serveOnLoopback(server)), created };
}

/** The environment both E2B SDKs read; set before they are imported. */
export function e2bEnvironment(controlPlane: E2bControlPlane, agent: TestAgent): void {
  process.env.E2B_API_URL = controlPlane.url;
  process.env.E2B_API_KEY = "e2b_local_test_key";
  process.env.E2B_SANDBOX_URL = agent.url;
  delete process.env.E2B_DEBUG;
}

export interface E2bSession {
  readonly agent: TestAgent;
  readonly controlPlane: E2bControlPlane;
  readonly close: () => Promise<void>;
}

/** A real agent and the control-plane stand-in, with the SDKs' environment pointing at them. */
export async function startE2bSession(overrides: Parameters<typeof startTestAgent>[0] = {}, options: E2bControlPlaneOptions = {}): Promise<E2bSession> {
  const agent = await startTestAgent(overrides);
  const controlPlane = await startE2bControlPlane(agent, options);
  e2bEnvironment(controlPlane, agent);
  return {
    agent,
    controlPlane,
    close: async () => {
      await controlPlane.close();
      await agent.close();
    },
  };
}
