/**
 * The image's layout, built without Docker: the paths the Dockerfile COPYs, installed by the same
 * script in production mode (npm ci, build, dev dependencies pruned), then started with the image's
 * own command line (read from the Dockerfile) but on a free loopback port. What breaks only in
 * production, such as a runtime import of a dev dependency or a native addon lost to the prune,
 * breaks here.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix, relative } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { dockerCopies, dockerInstructions, imageCommand, REPO } from "../../helpers/recipes.js";

const TOKEN = "production-layout-token-4f1d";
/** npm ci (20-60 s), compiling node-pty and tsc on a busy two-core machine: generous. */
const INSTALL_TIMEOUT_MS = 8 * 60_000;

const children: ChildProcess[] = [];
let root: string | undefined;
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

/** The environment of a fresh image: nothing of this test run's agent settings or node flags. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith("SANDBOX_AGENT_") || name === "NODE_OPTIONS" || name.startsWith("VITEST")) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
}

function runToEnd(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

/** Copies what the Dockerfile COPYs, with Docker's meaning: a directory's contents go into the target. */
async function copyLikeDocker(target: string): Promise<void> {
  for (const { sources, destination } of dockerCopies()) {
    for (const source of sources) {
      const from = join(REPO, source);
      if (!existsSync(from)) throw new Error(`the Dockerfile copies ${source}, which does not exist`);
      const to = statSync(from).isDirectory() || !destination.endsWith("/") ? join(target, destination) : join(target, destination, posix.basename(source));
      await cp(from, to, { recursive: true });
    }
  }
}

function listeningPort(child: ChildProcess, logs: { text: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the agent exited with ${code} before listening:\n${logs.text}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      logs.text += `${line}\n`;
      let entry: { msg?: string; port?: number };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === "sandbox-agent listening" && typeof entry.port === "number") resolve(entry.port);
    });
  });
}

describe("production layout", () => {
  it(
    "installs with the image's script, keeps no dev dependencies, and serves from its own directory",
    async () => {
      root = await mkdtemp(join(tmpdir(), "agent-production-"));
      const image = imageCommand(dockerInstructions());
      const app = join(root, "app");
      await copyLikeDocker(app);

      const install = await runToEnd("bash", ["scripts/install.sh", "agent", "--production"], app, INSTALL_TIMEOUT_MS);
      expect({ code: install.code, signal: install.signal }, install.output.slice(-4000)).toEqual({ code: 0, signal: null });

      // Built, and pruned: the compiler and the test runner are gone, the runtime is there.
      expect(existsSync(join(app, "dist/main.js"))).toBe(true);
      for (const dev of ["vitest", "typescript", "tsx", "@scalebox/sdk", "playwright-core"]) {
        expect(existsSync(join(app, "node_modules", dev)), `dev dependency ${dev} left in the layout`).toBe(false);
      }
      const pkg = JSON.parse(readFileSync(join(app, "package.json"), "utf8")) as { version: string; dependencies: Record<string, string> };
      for (const dep of Object.keys(pkg.dependencies)) {
        expect(existsSync(join(app, "node_modules", dep)), `dependency ${dep} missing`).toBe(true);
      }
      // Native addons survive the prune and load: node-pty is compiled on install, zeromq prebuilt.
      const natives = await runToEnd(process.execPath, ["-e", "require('node-pty'); require('zeromq'); console.log('natives ok')"], app, 60_000);
      expect(natives.output.trim(), natives.output).toBe("natives ok");

      // The image's command line, from the Dockerfile, with its paths moved into this layout; only
      // the address changes (a free loopback port).
      const [node, script, ...flags] = image.agentArgv;
      expect(node).toBe("node");
      const scriptHere = join(app, relative(image.workdir, script!));
      const args = [...flags];
      args[args.indexOf("--port") + 1] = "0";
      args[args.indexOf("--host") + 1] = "127.0.0.1";

      const version = await runToEnd(process.execPath, [scriptHere, "--version"], app, 30_000);
      expect(version.output.trim()).toBe(`sandbox-agent ${pkg.version}`);

      const agent = spawn(process.execPath, [scriptHere, ...args], {
        cwd: app,
        env: cleanEnv({ SANDBOX_AGENT_ACCESS_TOKEN: TOKEN }),
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(agent);
      const logs = { text: "" };
      agent.stderr.on("data", (chunk: Buffer) => (logs.text += chunk.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        agent.once("exit", (code, signal) => resolve({ code, signal })),
      );
      const port = await listeningPort(agent, logs);
      const base = `http://127.0.0.1:${port}`;

      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(200);
      expect(await health.text()).toBe("OK");

      const stat = (token: string): Promise<Response> =>
        fetch(`${base}/sandboxagent.Filesystem/Stat`, {
          method: "POST",
          headers: { "content-type": "application/json", "connect-protocol-version": "1", "x-access-token": token },
          body: JSON.stringify({ path: join(app, "dist") }),
        });
      const ok = await stat(TOKEN);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ entry: { name: "dist", type: "FILE_TYPE_DIRECTORY" } });
      expect((await stat("wrong-token")).status).toBe(401);

      agent.kill("SIGTERM");
      expect(await exited, logs.text).toEqual({ code: 0, signal: null });
    },
    INSTALL_TIMEOUT_MS + 120_000,
  );
});
