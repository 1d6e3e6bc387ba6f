import type { Operation } from "./context.js";
import { execute } from "./execute.js";
import { files } from "./files.js";
import { pty } from "./pty.js";
import { streamProcess } from "./stream-process.js";
import { watchPolled, watchStream } from "./watch.js";

export type { OpContext, Operation } from "./context.js";

/** The mix every client draws from, each by its weight. */
export const OPERATIONS: readonly Operation[] = [files, streamProcess, pty, watchStream, watchPolled, execute];

export function pickOperation(): Operation {
  const total = OPERATIONS.reduce((sum, op) => sum + op.weight, 0);
  let point = Math.random() * total;
  for (const op of OPERATIONS) {
    point -= op.weight;
    if (point < 0) return op;
  }
  return OPERATIONS[OPERATIONS.length - 1]!;
}
