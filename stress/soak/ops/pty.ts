/**
 * A terminal session: `sh -i` in a PTY is sent `echo soak-$((a+b))` and `exit`, through unary
 * SendInput or the StreamInput client stream (HTTP/2 only), sometimes with a resize in between.
 * The sum is printed only by the shell, never by the terminal's echo of what was typed, so seeing
 * it proves the input went in and the output came back; the session must then end with exit 0.
 */
import { create } from "@bufbuild/protobuf";
import { Process, StreamInputRequestSchema, type ProcessSelector, type StreamInputRequest } from "../../../src/gen/sandboxagent/api_pb.js";
import { coin, randomInt } from "../random.js";
import type { OpContext, Operation } from "./context.js";

async function typeLines(ctx: OpContext, pid: number, lines: readonly string[]): Promise<void> {
  const selector = { selector: { case: "pid", value: pid } } as ProcessSelector;
  const inputs = lines.map((line) => Buffer.from(line));
  if (coin()) {
    const client = ctx.conn.client(Process);
    for (const [i, input] of inputs.entries()) {
      await client.sendInput({ process: selector, input: { input: { case: "pty", value: input } } }, { signal: ctx.signal });
      if (i === 0 && coin())
        await client.update({ process: selector, pty: { size: { cols: randomInt(20, 200), rows: randomInt(5, 60) } } }, { signal: ctx.signal });
    }
    return;
  }
  async function* messages(): AsyncGenerator<StreamInputRequest> {
    yield create(StreamInputRequestSchema, { event: { case: "start", value: { process: selector } } });
    for (const input of inputs) yield create(StreamInputRequestSchema, { event: { case: "data", value: { input: { input: { case: "pty", value: input } } } } });
  }
  await ctx.conn.client(Process, "h2").streamInput(messages(), { signal: ctx.signal });
}

export const pty: Operation = {
  name: "pty",
  weight: 2,
  async run(ctx) {
    const a = randomInt(1_000_000, 9_999_999);
    const b = randomInt(1_000_000, 9_999_999);
    const expected = `soak-${a + b}`;
    // Failed input would leave the shell waiting for ever: stop reading at once and report that.
    const inputFailed = new AbortController();
    const stream = ctx.conn.client(Process).start(
      { process: { cmd: "/bin/sh", args: ["-i"], envs: { TERM: "xterm-256color" } }, pty: { size: { cols: 80, rows: 24 } } },
      // The time limit also makes the agent kill a shell that is still there at the deadline.
      { signal: AbortSignal.any([ctx.signal, inputFailed.signal]), timeoutMs: ctx.remainingMs() },
    );
    let output = "";
    let exitCode: number | undefined;
    let typing: Promise<void> | undefined;
    try {
      for await (const res of stream) {
        const event = res.event?.event;
        if (event?.case === "start") {
          typing = typeLines(ctx, event.value.pid, [`echo soak-$((${a}+${b}))\r`, "exit\r"]);
          typing.catch(() => inputFailed.abort());
        } else if (event?.case === "data" && event.value.output.case === "pty") {
          output += Buffer.from(event.value.output.value).toString("latin1");
        } else if (event?.case === "end") {
          exitCode = event.value.exitCode;
        }
      }
    } finally {
      await typing;
    }
    if (typing === undefined) throw new Error("the stream sent no start event");
    if (exitCode === undefined) throw new Error("the session finished without an end event");
    if (!output.includes(expected)) throw new Error(`the terminal never showed ${expected}; it showed ${JSON.stringify(output.slice(-300))}`);
    if (exitCode !== 0) throw new Error(`the shell exited with ${exitCode}`);
  },
};
