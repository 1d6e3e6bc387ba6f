/**
 * A deadline longer than a timer can hold is clamped to the longest one it can. Node's setTimeout
 * takes at most 2^31 - 1 ms (24.8 days) and turns anything longer into 1 ms, so connect-es (whose
 * deadline is a setTimeout) and the agent's own time limits would end a call given a 30-day
 * deadline after one millisecond with `deadline_exceeded`. Clamping keeps the meaning ("not for a
 * very long time") and every reader of the headers (connect-es, Process/Start's time limit) agrees.
 *
 * Upstream: no connect-es report existed: docs/upstream/connect-es.md ("deadlines").
 */
import type { HandlerWrap } from "./handler-wrap.js";

/** The longest delay setTimeout honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const GRPC_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };
/** The clamped gRPC form: whole seconds, within the protocol's 8 digits. */
const MAX_GRPC_TIMEOUT = `${Math.floor(MAX_TIMER_MS / 1000)}S`;

export const clampDeadlines: HandlerWrap = (next) => (req) => {
  const connect = req.header.get("connect-timeout-ms");
  // Malformed values are left for connect-es to refuse.
  if (connect !== null && /^\d{1,10}$/.test(connect) && Number(connect) > MAX_TIMER_MS) req.header.set("connect-timeout-ms", String(MAX_TIMER_MS));
  const grpc = req.header.get("grpc-timeout");
  const match = grpc === null ? null : /^(\d{1,8})([HMSmun])$/.exec(grpc);
  if (match !== null && Number(match[1]) * GRPC_UNIT_MS[match[2]!]! > MAX_TIMER_MS) req.header.set("grpc-timeout", MAX_GRPC_TIMEOUT);
  return next(req);
};
