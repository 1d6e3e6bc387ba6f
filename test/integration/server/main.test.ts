/**
 * The agent as a user starts it: the command-line entry in its own process.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";

const running: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});

function startMain(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  const { SANDBOX_AGENT_ACCESS_TOKEN: _dropped, ...base } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], { env: { ...base, ...env } });
  running.push(child);
  return child;
}

function listeningPort(child: ChildProcessWithoutNullStreams): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`agent exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === "sandbox-agent listening" && entry.port) resolve(entry.port);
    });
  });
}

const exitOf = (child: ChildProcessWithoutNullStreams): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once("exit", (code) => resolve(code)));

describe("command-line agent", () => {
  it("generates and prints a token once when none is configured, and enforces it", async () => {
    const child = startMain(["--host", "127.0.0.1", "--port", "0"]);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const port = await listeningPort(child);
    const token = /generated one: (\S+)/.exec(stderr)?.[1];
    expect(token).toBeTruthy();
    expect(stderr.match(/generated one/g)).toHaveLength(1);
    const stat = (t: string): Promise<Response> =>
      fetch(`http://127.0.0.1:${port}/sandboxagent.Filesystem/Stat`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-access-token": t },
        body: JSON.stringify({ path: "/" }),
      });
    expect((await stat(token!)).status).toBe(200);
    expect((await stat("wrong")).status).toBe(401);
    child.kill("SIGTERM");
    expect(await exitOf(child)).toBe(0);
  });

  it("shuts down gracefully on SIGTERM with a connection open", async () => {
    const child = startMain(["--host", "127.0.0.1", "--port", "0"], { SANDBOX_AGENT_ACCESS_TOKEN: "t" });
    const port = await listeningPort(child);
    const keepAlive = await fetch(`http://127.0.0.1:${port}/health`);
    expect(keepAlive.status).toBe(200);
    child.kill("SIGTERM");
    expect(await exitOf(child)).toBe(0);
  });

  it("refuses bad configuration with a clear message and exit code 2", async () => {
    const child = startMain(["--port", "not-a-port"]);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await exitOf(child)).toBe(2);
    expect(stderr).toContain("--port must be a whole number");
  });

  // Issue 14, item 3: each of these started an agent that an empty X-Access-Token header opened
  // (or whose token was the text "null").
  it.each([
    ["an empty flag", ["--access-token="], {}],
    ["a blank flag", ["--access-token", "  "], {}],
    ["an empty variable", [], { SANDBOX_AGENT_ACCESS_TOKEN: "" }],
    ["an empty config value", ["--config", "{dir}/empty.json"], {}],
    ["a null config value", ["--config", "{dir}/null.json"], {}],
    ["a numeric config value", ["--config", "{dir}/number.json"], {}],
  ] as const)("refuses %s as the access token, with exit code 2", async (_case, args, env) => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(`${tmpdir()}/agent-token-`);
    writeFileSync(`${dir}/empty.json`, JSON.stringify({ accessToken: "" }));
    writeFileSync(`${dir}/null.json`, JSON.stringify({ accessToken: null }));
    writeFileSync(`${dir}/number.json`, JSON.stringify({ accessToken: 12345 }));
    const child = startMain(["--host", "127.0.0.1", "--port", "0", "--kernel-pool-size", "0", ...args.map((arg) => arg.replace("{dir}", dir))], env);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await exitOf(child)).toBe(2);
    expect(stderr).toMatch(/--access-token .*is empty|"accessToken" must be a string/);
    expect(stderr).not.toContain("    at ");
  });

  it("prints help and version", async () => {
    const help = startMain(["--help"]);
    let out = "";
    help.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    expect(await exitOf(help)).toBe(0);
    expect(out).toContain("--access-token-file");
    const version = startMain(["--version"]);
    let v = "";
    version.stdout.on("data", (chunk: Buffer) => (v += chunk.toString()));
    expect(await exitOf(version)).toBe(0);
    expect(v).toMatch(/^sandbox-agent \d+\.\d+\.\d+/);
  });
});

describe("command-line agent: languages file", () => {
  it("refuses a bad languages file at start with a clear message", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const file = `${mkdtempSync(`${tmpdir()}/agent-lang-`)}/languages.json`;
    writeFileSync(file, "[1, 2]");
    const child = startMain(["--host", "127.0.0.1", "--port", "0", "--kernel-pool-size", "0", "--languages-file", file], { SANDBOX_AGENT_ACCESS_TOKEN: "t" });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await exitOf(child)).toBe(2);
    expect(stderr).toContain(`languages file ${file} must hold a JSON object`);
    expect(stderr).not.toContain("    at ");
  });
});
