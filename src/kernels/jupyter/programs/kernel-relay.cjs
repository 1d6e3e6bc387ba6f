// The relay between a Deno kernel in its own network namespace and the Unix sockets its owner
// reaches (src/kernels/jupyter/netns.ts). Arguments: JSON [[socketPath, port], ...], then the
// kernel's argv.
"use strict";
const net = require("node:net");
const { spawn } = require("node:child_process");
const [routesJson, command, ...args] = process.argv.slice(2);
const RETRY_MS = 20;
function relay(down, port) {
  down.pause();
  let up;
  const end = () => {
    down.destroy();
    if (up !== undefined) up.destroy();
  };
  down.on("error", end);
  down.on("close", end);
  const attempt = () => {
    if (down.destroyed) return;
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("error", () => {
      socket.destroy();
      setTimeout(attempt, RETRY_MS);
    });
    socket.once("connect", () => {
      socket.removeAllListeners("error");
      up = socket;
      up.setNoDelay(true);
      up.on("error", end);
      up.on("close", end);
      down.pipe(up);
      up.pipe(down);
      down.resume();
    });
  };
  attempt();
}
async function main() {
  const routes = JSON.parse(routesJson);
  await Promise.all(
    routes.map(
      ([path, port]) =>
        new Promise((resolve, reject) => {
          const server = net.createServer((down) => relay(down, port));
          server.once("error", reject);
          server.listen(path, resolve);
        }),
    ),
  );
  process.on("SIGINT", () => {});
  const kernel = spawn(command, args, { stdio: "inherit" });
  kernel.once("error", (err) => {
    process.stderr.write(`${command}: ${err.message}\n`);
    process.exit(127);
  });
  kernel.once("exit", (code, signal) => {
    if (signal === null) process.exit(code === null ? 1 : code);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    // A signal Node ignores (SIGPIPE) would leave the relay running without its kernel.
    setTimeout(() => process.exit(1), 100);
  });
}
main().catch((err) => {
  process.stderr.write(`kernel relay: ${err.message}\n`);
  process.exit(1);
});
