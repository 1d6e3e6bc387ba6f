/**
 * Property: a Connect-streaming, gRPC or gRPC-web request whose frames are wrong (stray flags, lying
 * lengths, cut-off headers, several messages for one, compression claimed or not),
 * for any RPC the agent serves and in any protocol shape, gets no answer that only a server defect
 * gives (a 5xx outside Connect, internal/unknown/data_loss, no status, or nothing). Afterwards the
 * agent answers /health and holds no watcher or process a request opened, and once closed it has
 * let go of every handle. Requests: harness/arbitraries/connect.ts, family "envelope".
 */
import { describeConnectFamilyProperty } from "../../helpers/fuzz-target.js";

describeConnectFamilyProperty("Connect, gRPC and gRPC-web framing", "envelope");
