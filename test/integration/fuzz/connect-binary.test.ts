/**
 * Property: a Connect request with a binary body (valid random messages, and mutated ones: truncated
 * and overlong varints, wrong wire types, invalid UTF-8, lengths past the end, random bytes),
 * for any RPC the agent serves and in any protocol shape, gets no answer that only a server defect
 * gives (a 5xx outside Connect, internal/unknown/data_loss, no status, or nothing). Afterwards the
 * agent answers /health and holds no watcher or process a request opened, and once closed it has
 * let go of every handle. Requests: harness/arbitraries/connect.ts, family "connect-binary".
 */
import { describeConnectFamilyProperty } from "../../helpers/fuzz-target.js";

describeConnectFamilyProperty("Connect binary bodies", "connect-binary");
