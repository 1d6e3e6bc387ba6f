/**
 * Family "flood": large and trickled bodies without the token (issue 14's attacker R), to RPCs of
 * every protocol and to /upload, over HTTP/1.1 and HTTP/2. The agent must refuse each from its
 * headers, before the body is through: a request that waits for the whole body (48 MiB, or a
 * trickle of one byte every 20 ms) runs into the campaign's timeout and is a fault, and a body
 * that was read anyway shows in the campaign's memory checks.
 */
import fc from "fast-check";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { transports, UNAUTHORISED } from "./http-common.js";

const MiB = 1024 * 1024;

const TARGETS: ReadonlyArray<readonly [string, string]> = [
  ["/sandboxagent.Filesystem/Stat", "application/json"],
  ["/sandboxagent.Process/Start", "application/connect+proto"],
  ["/sandboxagent.Process/SendInput", "application/grpc"],
  ["/sandboxagent.ExecutionService/Execute", "application/grpc-web+proto"],
  ["/upload", "multipart/form-data; boundary=x"],
  ["/download/etc/hostname", "application/octet-stream"],
];

export function floodRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  const credentials = fc.constantFrom<Array<readonly [string, string]>>([], [["x-access-token", `${ctx.token}x`]], [["x-access-token", ""]]);
  const flood = fc.oneof(
    fc.constantFrom(MiB, 16 * MiB, 48 * MiB).map((bytes) => ({ bytes })),
    fc.constant({ bytes: 64 * 1024, trickleMs: 20 }),
  );
  return fc.record({ target: fc.constantFrom(...TARGETS), transport: transports, credentials, flood }).map(
    ({ target: [path, contentType], transport, credentials: headers, flood: body }): RequestSpec => ({
      family: "flood",
      transport,
      method: "POST",
      target: path,
      headers: [...headers, ["content-type", contentType], UNAUTHORISED],
      flood: body,
    }),
  );
}
