/**
 * Issue 15's peer row: Execute `1+1` in a warm Python context through this agent, side by side
 * with the same through Debian's Jupyter Server (python3-jupyter-server, its REST API to start the
 * kernel and the kernel's channels WebSocket to run it), started by this suite on a loopback port.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ContextService, ExecutionService } from "../../src/gen/sandboxagent/api_pb.js";
import { percentile, row, sample, type BenchContext, type Row, type Suite } from "../lib.js";

const JUPYTER_PYTHON = "/usr/bin/python3";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function agentSamples(ctx: BenchContext, count: number): Promise<number[]> {
  const transport = createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1", useBinaryFormat: false });
  const exec = createClient(ExecutionService, transport);
  const contexts = createClient(ContextService, transport);
  const headers = { "x-access-token": ctx.token };
  const { id } = await contexts.createContext({ language: "python", cwd: ctx.workDir }, { headers });
  try {
    return await sample(count, async () => {
      for await (const frame of exec.execute({ contextId: id, code: "1+1", language: "python", envVars: {} }, { headers })) {
        if (frame.event.case === "error") throw new Error(`execution failed: ${frame.event.value.value}`);
      }
    });
  } finally {
    await contexts.destroyContext({ contextId: id }, { headers });
  }
}

async function jupyterServerSamples(ctx: BenchContext, count: number): Promise<number[]> {
  const token = randomBytes(16).toString("hex");
  const port = await freePort();
  const server = spawn(
    JUPYTER_PYTHON,
    [
      "-m",
      "jupyter_server",
      `--ServerApp.token=${token}`,
      "--ServerApp.ip=127.0.0.1",
      `--ServerApp.port=${port}`,
      "--ServerApp.port_retries=0",
      "--ServerApp.open_browser=False",
      `--ServerApp.root_dir=${ctx.workDir}`,
      "--allow-root",
    ],
    { stdio: "ignore" },
  );
  const url = `http://127.0.0.1:${port}`;
  const auth = { authorization: `token ${token}` };
  try {
    const deadline = Date.now() + 60_000;
    while (
      !(await fetch(`${url}/api/status`, { headers: auth }).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error("Jupyter Server did not start (apt-get install python3-jupyter-server)");
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const kernel = (await (
      await fetch(`${url}/api/kernels`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ name: "python3" }) })
    ).json()) as { id: string };
    const client = spawn(
      process.execPath,
      ["--experimental-websocket", "--no-warnings", "--import", "tsx", "bench/peers/jupyter-ws.ts", url, token, kernel.id, String(count)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    client.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    const code = await new Promise<number | null>((resolve) => client.once("exit", resolve));
    if (code !== 0) throw new Error(`the WebSocket client exited with ${code}`);
    return JSON.parse(out) as number[];
  } finally {
    server.kill("SIGTERM");
    await new Promise((resolve) => (server.exitCode !== null ? resolve(undefined) : server.once("exit", resolve)));
  }
}

async function peerRows(ctx: BenchContext): Promise<Row[]> {
  const count = ctx.quick ? 200 : 1000;
  const agent = await agentSamples(ctx, count);
  const peer = await jupyterServerSamples(ctx, count);
  return [
    row("Execute 1+1, warm Python context, p50 (vs Debian's Jupyter Server over WebSocket)", "ms", percentile(agent, 50), percentile(peer, 50)),
    row("Execute 1+1, warm Python context, p99 (vs Debian's Jupyter Server over WebSocket)", "ms", percentile(agent, 99), percentile(peer, 99)),
  ];
}

export const peerSuite: Suite = { name: "peer", run: peerRows };
