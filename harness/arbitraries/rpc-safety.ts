/**
 * The last check before a generated RPC request is sent: every message the agent could decode
 * from it must satisfy its RPC's rule (rpc-rules.ts). Mutated bodies need this as much as valid
 * ones: an empty body is a valid RemoveRequest whose path is "" (the home directory), and random
 * bytes may spell a path too.
 *
 * It reads the request the way any protocol of the agent could: the whole body or the query's
 * `message` as one message, the body as frames (declared lengths followed, a cut-off last frame
 * included), each of those as it is and gunzipped or un-brotlied, and each as binary and as JSON,
 * with the options the agent uses. Reading more ways than the agent does only refuses more.
 */
import { fromBinary, fromJsonString, type DescMessage, type DescMethod, type Message } from "@bufbuild/protobuf";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { ruleFor, SHORT_DEADLINE_MS } from "./rpc-rules.js";

/** The agent's own limit on one message (server.ts RPC_READ_MAX_BYTES). */
const READ_MAX_BYTES = 64 * 1024 * 1024;

/** Why this request must not be sent, or undefined when the agent may act on it. */
export function unsafeRequest(spec: RequestSpec, method: DescMethod, ctx: FuzzContext): string | undefined {
  const rule = ruleFor(method);
  for (const message of decodable(spec, method.input)) {
    const why = rule.unsafe?.(message, ctx, method.input);
    if (why !== undefined) return why;
    if (rule.staysOpen?.(message) && !hasShortDeadlines(spec)) return "may stay open and has no short deadline";
  }
  return undefined;
}

function* decodable(spec: RequestSpec, desc: DescMessage): Generator<Message> {
  for (const payload of payloads(spec)) {
    for (const bytes of decompressed(payload)) {
      const asBinary = attempt(() => fromBinary(desc, bytes));
      if (asBinary !== undefined) yield asBinary;
      const asJson = attempt(() => fromJsonString(desc, new TextDecoder().decode(bytes), { ignoreUnknownFields: true }));
      if (asJson !== undefined) yield asJson;
    }
  }
}

function payloads(spec: RequestSpec): Uint8Array[] {
  const body = Buffer.concat((spec.body ?? []).map((chunk) => Buffer.from(chunk)));
  const bodies = spec.cutAfter === undefined ? [body] : [body, body.subarray(0, spec.cutAfter)];
  const out: Uint8Array[] = [...queryMessages(spec.target)];
  for (const whole of bodies) out.push(whole, ...frames(whole));
  return out;
}

/** A Connect GET carries its message in the query, as text or base64. */
function queryMessages(target: string): Uint8Array[] {
  const query = target.indexOf("?");
  if (query < 0) return [];
  const params = new URLSearchParams(target.slice(query + 1));
  return params.getAll("message").flatMap((message) => [Buffer.from(message, "utf8"), Buffer.from(message, "base64"), Buffer.from(message, "base64url")]);
}

/** Each frame's payload, following declared lengths; a last frame cut short is kept as it is. */
function frames(body: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    out.push(body.subarray(at + 5, Math.min(body.length, at + 5 + length)));
    at += 5 + length;
  }
  return out;
}

function decompressed(payload: Uint8Array): Uint8Array[] {
  const out = [payload];
  if (payload.length === 0) return out;
  const gunzipped = attempt(() => gunzipSync(payload, { maxOutputLength: READ_MAX_BYTES }));
  if (gunzipped !== undefined) out.push(gunzipped);
  const unbrotlied = attempt(() => brotliDecompressSync(payload, { maxOutputLength: READ_MAX_BYTES }));
  if (unbrotlied !== undefined) out.push(unbrotlied);
  return out;
}

function attempt<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

const TIMEOUT_SYNTAX: Readonly<Record<string, RegExp>> = {
  "connect-timeout-ms": /^\d{1,10}$/,
  "grpc-timeout": /^(\d{1,8})([HMSmun])$/,
};
const GRPC_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };

/**
 * Both deadline headers present once, each short or malformed (a malformed one makes the agent
 * refuse the call before it starts anything). Both, because which one counts depends on the
 * protocol the agent picks from the content type, and this check need not guess it.
 */
export function hasShortDeadlines(spec: RequestSpec): boolean {
  return Object.entries(TIMEOUT_SYNTAX).every(([name, syntax]) => {
    const values = spec.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v.trim());
    if (values.length !== 1) return false;
    const match = syntax.exec(values[0]!);
    if (match === null) return true;
    const ms = name === "grpc-timeout" ? Number(match[1]) * GRPC_UNIT_MS[match[2]!]! : Number(match[0]);
    return ms <= SHORT_DEADLINE_MS;
  });
}
