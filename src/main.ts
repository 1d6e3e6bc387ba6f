#!/usr/bin/env node
/** Command-line entry: reads the configuration, starts the agent, and shuts down on SIGTERM/SIGINT. */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError, helpText, loadConfig, type Config } from "./config.js";
import { endLogStream, stdoutLogStream } from "./log-stream.js";
import { startAgent, type Agent } from "./server.js";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (argv.includes("--version")) {
    process.stdout.write(`sandbox-agent ${version()}\n`);
    return;
  }
  let config: Config;
  let agent: Agent;
  const logStream = stdoutLogStream();
  try {
    config = loadConfig(argv);
    let accessToken = config.accessToken;
    if (accessToken === undefined && config.auth === "token") {
      accessToken = randomBytes(24).toString("base64url");
      // Printed once, on stderr, so an operator starting the agent by hand can call it.
      process.stderr.write(`sandbox-agent: no access token configured; generated one: ${accessToken}\n`);
    }
    // Services validate their own files (the languages table) while the agent is built.
    agent = await startAgent({ ...config, accessToken, logStream });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sandbox-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  agent.app.log.info({ port: agent.port, host: config.host, tls: config.tls !== undefined, interpreterUrl: agent.interpreterUrl }, "sandbox-agent listening");

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    agent.app.log.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    agent.close().then(
      () => endLogStream(logStream).then(() => process.exit(0)),
      () => endLogStream(logStream).then(() => process.exit(1)),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`sandbox-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
