/**
 * The client side of the Jupyter Server peer row, run by bench/suites/peer.ts in a node of its own
 * started with --experimental-websocket (Node 20 has WebSocket only behind that flag). Arguments:
 * base URL, token, kernel id, count. Runs `1+1` count times (after a warm-up) over the kernel's
 * channels WebSocket, each from execute_request to both its execute_reply and its IOPub idle, as
 * the direct ZeroMQ baseline does, and prints the durations in ms as one JSON array.
 */
import { randomUUID } from "node:crypto";

const [baseUrl, token, kernelId, countArg] = process.argv.slice(2);
const count = Number(countArg);
const session = randomUUID();

interface Message {
  readonly channel: string;
  readonly msg_type: string;
  readonly parent_header: { readonly msg_id?: string };
  readonly content: { readonly execution_state?: string; readonly status?: string };
}

const socket = new WebSocket(`${baseUrl!.replace(/^http/, "ws")}/api/kernels/${kernelId}/channels?session_id=${session}&token=${token}`);
const waiting = new Map<string, { reply: boolean; idle: boolean; done: () => void }>();
socket.addEventListener("message", (event: MessageEvent) => {
  const message = JSON.parse(String(event.data)) as Message;
  const entry = waiting.get(message.parent_header.msg_id ?? "");
  if (entry === undefined) return;
  if (message.channel === "shell" && message.msg_type === "execute_reply") entry.reply = true;
  if (message.channel === "iopub" && message.msg_type === "status" && message.content.execution_state === "idle") entry.idle = true;
  if (entry.reply && entry.idle) entry.done();
});

function execute(code: string): Promise<void> {
  const msgId = randomUUID();
  return new Promise((resolve) => {
    waiting.set(msgId, {
      reply: false,
      idle: false,
      done: () => {
        waiting.delete(msgId);
        resolve();
      },
    });
    socket.send(
      JSON.stringify({
        header: { msg_id: msgId, username: "bench", session, msg_type: "execute_request", version: "5.3", date: new Date().toISOString() },
        parent_header: {},
        metadata: {},
        content: { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: false },
        channel: "shell",
        buffers: [],
      }),
    );
  });
}

await new Promise((resolve, reject) => {
  socket.addEventListener("open", resolve, { once: true });
  socket.addEventListener("error", reject, { once: true });
});
for (let i = 0; i < Math.min(50, count); i++) await execute("1+1");
const samples: number[] = [];
for (let i = 0; i < count; i++) {
  const start = process.hrtime.bigint();
  await execute("1+1");
  samples.push(Number(process.hrtime.bigint() - start) / 1e6);
}
socket.close();
process.stdout.write(`${JSON.stringify(samples)}\n`);
