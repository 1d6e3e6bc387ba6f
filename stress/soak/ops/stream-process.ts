/**
 * A process that writes a known stream (zeros, one letter, or a repeated word) of random length
 * up to 16 MiB, run through Process/Start: the streamed stdout is checked byte for byte against
 * the pattern as it arrives (nothing is buffered), then its length and the exit code 0. Missing
 * or wrong bytes count as lost. The commands come from a fixed list; only numbers vary.
 */
import { Process, type StartRequest } from "../../../src/gen/sandboxagent/api_pb.js";
import { pick, randomInt, randomSize } from "../random.js";
import { LostBytes } from "../tally.js";
import type { Operation } from "./context.js";

const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

interface Generator {
  readonly process: StartRequest["process"];
  /** The output is this pattern repeated (and cut at the length). */
  readonly pattern: Buffer;
}

function generator(bytes: number): Generator {
  const n = String(bytes);
  const word = `soak-${randomInt(0, 99_999)}`;
  const choices: Generator[] = [
    { process: { cmd: "head", args: ["-c", n, "/dev/zero"] } as StartRequest["process"], pattern: Buffer.from([0]) },
    { process: { cmd: "sh", args: ["-c", 'head -c "$1" /dev/zero | tr "\\0" a', "sh", n] } as StartRequest["process"], pattern: Buffer.from("a") },
    { process: { cmd: "sh", args: ["-c", 'yes "$1" | head -c "$2"', "sh", word, n] } as StartRequest["process"], pattern: Buffer.from(`${word}\n`) },
  ];
  return pick(choices);
}

/** Checks a stream against a repeated pattern chunk by chunk. */
class PatternCheck {
  received = 0;
  wrong = 0;

  constructor(private readonly pattern: Buffer) {}

  feed(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== this.pattern[(this.received + i) % this.pattern.length]) this.wrong++;
    }
    this.received += chunk.length;
  }
}

export const streamProcess: Operation = {
  name: "process",
  weight: 2,
  async run(ctx) {
    const expected = randomSize(1, MAX_OUTPUT_BYTES);
    const { process, pattern } = generator(expected);
    const check = new PatternCheck(pattern);
    let exitCode: number | undefined;
    let stderr = "";
    const stream = ctx.conn.client(Process).start({ process }, { signal: ctx.signal, timeoutMs: ctx.remainingMs() });
    for await (const res of stream) {
      const event = res.event?.event;
      if (event?.case === "data") {
        const output = event.value.output;
        if (output.case === "stdout") check.feed(output.value);
        else if (output.case === "stderr") stderr += Buffer.from(output.value).toString();
      } else if (event?.case === "end") {
        exitCode = event.value.exitCode;
      }
    }
    const what = `${process?.cmd} ${process?.args.join(" ")}`;
    if (exitCode === undefined) throw new Error(`${what}: the stream finished without an end event`);
    const lost = Math.abs(expected - check.received) + check.wrong;
    if (lost > 0) throw new LostBytes(lost, `${what}: ${check.received} of ${expected} B streamed, ${check.wrong} of them wrong`);
    if (exitCode !== 0) throw new Error(`${what}: exit code ${exitCode}; stderr ${JSON.stringify(stderr.slice(0, 200))}`);
  },
};
