/**
 * Python through ExecutionService/Execute in the caller's default context: the code prints a
 * line and ends with `sum(range(n))`; the printed line and the main result's text must both be
 * exactly right, with no error. Concurrent clients share the one default context, so this also
 * drives the agent's execution queue.
 */
import { ExecutionService } from "../../../src/gen/sandboxagent/api_pb.js";
import type { Connections } from "../connections.js";
import { randomInt } from "../random.js";
import type { Operation } from "./context.js";

export interface ExecutionOutcome {
  readonly stdout: string;
  readonly mainResult: string | undefined;
  readonly error: string | undefined;
}

export async function executePython(conn: Connections, code: string, signal: AbortSignal, timeoutMs: number): Promise<ExecutionOutcome> {
  let stdout = "";
  let mainResult: string | undefined;
  let error: string | undefined;
  for await (const res of conn.client(ExecutionService).execute({ language: "python", contextId: "", code }, { signal, timeoutMs })) {
    const event = res.event;
    if (event.case === "stdout") stdout += event.value.content;
    else if (event.case === "result" && event.value.isMainResult) mainResult = event.value.text;
    else if (event.case === "error") error = `${event.value.name}: ${event.value.value}`;
  }
  return { stdout, mainResult, error };
}

export const execute: Operation = {
  name: "execute",
  weight: 2,
  async run(ctx) {
    const n = randomInt(1, 100_000);
    const outcome = await executePython(ctx.conn, `n = ${n}\nprint(f"soak {n}")\nsum(range(n))`, ctx.signal, ctx.remainingMs());
    if (outcome.error !== undefined) throw new Error(`sum(range(${n})) raised ${outcome.error}`);
    if (outcome.stdout !== `soak ${n}\n`) throw new Error(`print printed ${JSON.stringify(outcome.stdout)}, not "soak ${n}\\n"`);
    const sum = String((n * (n - 1)) / 2);
    if (outcome.mainResult !== sum) throw new Error(`sum(range(${n})) gave ${JSON.stringify(outcome.mainResult)}, not ${sum}`);
  },
};
