/**
 * Hostile RPC requests for every RPC of every service the agent serves, found by reflection over
 * SERVED_SERVICES (a new RPC is fuzzed without a line here), in every protocol shape the agent
 * serves: Connect unary (POST JSON/binary, and GET), Connect streaming, gRPC over HTTP/2 and
 * gRPC-web over HTTP/1.1, each with its own content types, deadline and encoding headers.
 *
 * Three families:
 *   - "connect-json": JSON bodies, valid random messages and mutated ones (wire-mutations.ts),
 *   - "connect-binary": the same in the binary encoding,
 *   - "envelope": well-encoded messages in frames that are not (lying lengths, stray flags,
 *     cut-off headers, several messages for one, compression claimed or not).
 * Any of them may also get its headers spoiled: no or the wrong content type, malformed deadlines,
 * unknown encodings, a compressed body that is not.
 *
 * Every request passes rpc-safety.ts before it is returned; one that could make the agent act
 * outside the scratch directory, run something off the allow-list or stay open without a short
 * deadline is replaced by the same request with an undecodable body.
 */
import fc from "fast-check";
import { toBinary, toJsonString, type DescMethod, type Message } from "@bufbuild/protobuf";
import { gzipSync } from "node:zlib";
import { SERVED_SERVICES } from "../../src/services/index.js";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { messageOf } from "./proto-values.js";
import { hasRule, requestOverrides, ruleFor, SHORT_DEADLINE_MS, unknownRpcOverrides } from "./rpc-rules.js";
import { unsafeRequest } from "./rpc-safety.js";
import { badlyFramed, binaryBodies, jsonBodies, wellFramed, type Framed } from "./wire-mutations.js";

export type ConnectFamily = "connect-json" | "connect-binary" | "envelope";
export const CONNECT_FAMILIES: readonly ConnectFamily[] = ["connect-json", "connect-binary", "envelope"];

type Protocol = "connect" | "grpc" | "grpc-web";
type Codec = "json" | "proto";

interface Shape {
  readonly protocol: Protocol;
  readonly codec: Codec;
  readonly transport: "http1" | "h2";
  /** Connect unary over GET, the message in the query. */
  readonly get: boolean;
  readonly contentType: string;
}

/** Every RPC the agent serves, by reflection. */
export function servedMethods(): DescMethod[] {
  return SERVED_SERVICES.flatMap((service) => service.methods);
}

/** Requests of every family, for every served RPC. */
export function connectRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc.oneof(...CONNECT_FAMILIES.map((family) => connectFamily(ctx, family)));
}

/** Requests of one family, for every served RPC. */
export function connectFamily(ctx: FuzzContext, family: ConnectFamily, methods: readonly DescMethod[] = servedMethods()): fc.Arbitrary<RequestSpec> {
  checkScratch(ctx.scratch);
  return fc.constantFrom(...methods).chain((method) => requestFor(ctx, family, method));
}

/** The scratch directory is where generated requests may delete things: never / or a top-level directory. */
function checkScratch(scratch: string): void {
  const depth = scratch.split("/").filter(Boolean).length;
  if (!scratch.startsWith("/") || depth < 2) throw new Error(`scratch directory ${JSON.stringify(scratch)} must be absolute and at least two levels deep`);
}

// ---- shapes ------------------------------------------------------------------------------------

const CONTENT_TYPES: Readonly<Record<"unary" | "stream" | "grpc" | "grpc-web", Readonly<Record<Codec, readonly string[]>>>> = {
  unary: { json: ["application/json", "application/json; charset=utf-8"], proto: ["application/proto"] },
  stream: { json: ["application/connect+json"], proto: ["application/connect+proto"] },
  grpc: { json: ["application/grpc+json"], proto: ["application/grpc", "application/grpc+proto"] },
  "grpc-web": { json: ["application/grpc-web+json"], proto: ["application/grpc-web", "application/grpc-web+proto"] },
};

function shapes(method: DescMethod, codec: Codec, enveloped: boolean): fc.Arbitrary<Shape> {
  const make = (protocol: Protocol, kind: keyof typeof CONTENT_TYPES, transports: readonly ("http1" | "h2")[], get = false) =>
    fc.record({
      protocol: fc.constant(protocol),
      codec: fc.constant(codec),
      transport: fc.constantFrom(...transports),
      get: fc.constant(get),
      contentType: fc.constantFrom(...CONTENT_TYPES[kind][codec]),
    });
  const framedShapes = [
    ...(method.methodKind === "unary" ? [] : [make("connect", "stream", ["http1", "h2"])]),
    make("grpc", "grpc", ["h2"]),
    make("grpc-web", "grpc-web", ["http1", "h2"]),
  ];
  if (enveloped) return fc.oneof(...framedShapes);
  if (method.methodKind !== "unary") return fc.oneof(...framedShapes);
  return fc.oneof(
    { weight: 3, arbitrary: make("connect", "unary", ["http1", "h2"]) },
    { weight: 1, arbitrary: make("connect", "unary", ["http1"], true) },
    { weight: 2, arbitrary: fc.oneof(...framedShapes) },
  );
}

// ---- bodies --------------------------------------------------------------------------------------

const encode = (method: DescMethod, codec: Codec, message: Message): Uint8Array =>
  codec === "json" ? new TextEncoder().encode(toJsonString(method.input, message)) : toBinary(method.input, message);

/** Message bodies for the family: one mutated (json/binary families) and the rest as they are. */
function payloads(method: DescMethod, family: ConnectFamily, codec: Codec, messages: readonly Message[]): fc.Arbitrary<Uint8Array[]> {
  const plain = messages.map((m) => encode(method, codec, m));
  if (family === "envelope") return fc.constant(plain);
  const mutated = (m: Message) => (codec === "json" ? jsonBodies(method.input, m) : binaryBodies(method.input, m));
  return fc.nat({ max: messages.length - 1 }).chain((at) => mutated(messages[at]!).map((body) => plain.map((p, i) => (i === at ? body : p))));
}

type Header = readonly [string, string];

interface Body {
  readonly body: Uint8Array;
  readonly target: string;
  readonly encodingHeaders: readonly Header[];
  readonly cutAfter?: number;
}

function unaryBody(path: string, shape: Shape, payload: Uint8Array): fc.Arbitrary<Body> {
  if (shape.get) {
    return fc.tuple(fc.boolean(), fc.boolean()).map(([asBase64, gzip]) => {
      const bytes = Buffer.from(gzip ? gzipSync(payload) : payload);
      // Binary and compressed messages only travel in base64; JSON may go as text.
      const base64 = asBase64 || gzip || shape.codec === "proto";
      const message = base64 ? bytes.toString("base64url") : bytes.toString("utf8");
      const query = `connect=v1&encoding=${shape.codec}&message=${encodeURIComponent(message)}${base64 ? "&base64=1" : ""}${gzip ? "&compression=gzip" : ""}`;
      return { body: new Uint8Array(0), target: `${path}?${query}`, encodingHeaders: [] };
    });
  }
  return fc.oneof(
    { weight: 5, arbitrary: fc.constant<Body>({ body: payload, target: path, encodingHeaders: [] }) },
    { weight: 1, arbitrary: fc.constant<Body>({ body: gzipSync(payload), target: path, encodingHeaders: [["content-encoding", "gzip"]] }) },
  );
}

function framedBody(path: string, shape: Shape, family: ConnectFamily, payloads: readonly Uint8Array[]): fc.Arbitrary<Body> {
  const encodingHeader = shape.protocol === "connect" ? "connect-content-encoding" : "grpc-encoding";
  const endFlag = shape.protocol === "connect" ? 0x02 : 0x80;
  const framed: fc.Arbitrary<Framed> = family === "envelope" ? badlyFramed(payloads, endFlag) : wellFramed(payloads);
  const cut = family === "envelope" ? fc.option(fc.nat(), { freq: 8, nil: undefined }) : fc.constant(undefined);
  return fc.tuple(framed, cut).map(([f, cutAt]) => {
    const named = f.encoding ?? f.claimsEncoding;
    return {
      body: f.body,
      target: path,
      encodingHeaders: named === undefined ? [] : [[encodingHeader, named] as const],
      ...(cutAt === undefined || f.body.length === 0 ? {} : { cutAfter: cutAt % f.body.length }),
    };
  });
}

// ---- headers -------------------------------------------------------------------------------------

const shortMs = fc.integer({ min: 100, max: SHORT_DEADLINE_MS });
const MALFORMED_CONNECT_TIMEOUTS = ["-1", "abc", "12345678901", "1.5", "", "0x10", "1e3", "٣"];
const MALFORMED_GRPC_TIMEOUTS = ["-1S", "1", "123456789S", "1X", "", "1.5S", "S", "10 m"];

/**
 * Deadlines: a call that may stay open gets both headers, each short or malformed (see
 * rpc-safety.ts `hasShortDeadlines`); any other call gets none, short, long, huge or malformed ones.
 */
function deadlineHeaders(mayStayOpen: boolean, protocol: Protocol): fc.Arbitrary<Header[]> {
  const connectValue = fc.oneof({ weight: 6, arbitrary: shortMs.map(String) }, { weight: 1, arbitrary: fc.constantFrom("0", ...MALFORMED_CONNECT_TIMEOUTS) });
  const grpcValue = fc.oneof(
    { weight: 6, arbitrary: shortMs.map((ms) => `${ms}m`) },
    { weight: 1, arbitrary: fc.constantFrom("0m", "0n", ...MALFORMED_GRPC_TIMEOUTS) },
  );
  if (mayStayOpen)
    return fc.tuple(connectValue, grpcValue).map(([c, g]) => [
      ["connect-timeout-ms", c],
      ["grpc-timeout", g],
    ]);
  const name = protocol === "connect" ? "connect-timeout-ms" : "grpc-timeout";
  const values =
    protocol === "connect"
      ? fc.constantFrom("60000", "9999999999", "0", ...MALFORMED_CONNECT_TIMEOUTS)
      : fc.constantFrom("60S", "99999999H", "0n", "1u", ...MALFORMED_GRPC_TIMEOUTS);
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant<Header[]>([]) },
    { weight: 1, arbitrary: (protocol === "connect" ? connectValue : grpcValue).map((v): Header[] => [[name, v]]) },
    { weight: 2, arbitrary: values.map((v): Header[] => [[name, v]]) },
  );
}

function baseHeaders(ctx: FuzzContext, shape: Shape): Header[] {
  const headers: Header[] = [["x-access-token", ctx.token]];
  if (!shape.get) headers.push(["content-type", shape.contentType]);
  if (shape.protocol === "connect" && !shape.get) headers.push(["connect-protocol-version", "1"]);
  if (shape.protocol === "grpc") headers.push(["te", "trailers"]);
  if (shape.protocol === "grpc-web") headers.push(["x-grpc-web", "1"]);
  return headers;
}

const without = (headers: readonly Header[], name: string): Header[] => headers.filter(([n]) => n !== name);
const replacing = (headers: readonly Header[], name: string, value: string): Header[] => [...without(headers, name), [name, value]];

const WRONG_CONTENT_TYPES = [
  "",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/JSON",
  "application/proto; charset=utf-8",
  "application/json; charset=utf-16",
  "application/connect+proto;x=y",
  "application/grpc-web-text",
  "application/grpc+xml",
  "application/connect+json",
  "application/proto",
  "application/json",
  "application/grpc",
  "application/grpc-web+proto",
  "*/*",
];

/** Ways to spoil headers that keep the deadline rules of a call that may stay open. */
function spoiledHeaders(headers: readonly Header[], mayStayOpen: boolean): fc.Arbitrary<Header[]> {
  const malformedDeadline = fc.oneof(
    fc.constantFrom(...MALFORMED_CONNECT_TIMEOUTS).map((v) => replacing(headers, "connect-timeout-ms", v)),
    fc.constantFrom(...MALFORMED_GRPC_TIMEOUTS).map((v) => replacing(headers, "grpc-timeout", v)),
  );
  const spoils: fc.Arbitrary<Header[]>[] = [
    fc.constant(without(headers, "content-type")),
    fc.constantFrom(...WRONG_CONTENT_TYPES).map((v) => replacing(headers, "content-type", v)),
    malformedDeadline,
    fc
      .tuple(
        fc.constantFrom("content-encoding", "connect-content-encoding", "grpc-encoding"),
        fc.constantFrom("gzip", "br", "zstd", "deflate", "identity", "gzip, br", "x", ""),
      )
      .map(([n, v]) => replacing(headers, n, v)),
    fc.constantFrom("2", "", "1.0", "v1").map((v) => replacing(headers, "connect-protocol-version", v)),
    fc.constant(without(headers, "connect-protocol-version")),
    fc
      .tuple(fc.constantFrom("connect-accept-encoding", "grpc-accept-encoding", "accept-encoding"), fc.constantFrom("gzip", "br", "zstd", "*", ""))
      .map(([n, v]) => replacing(headers, n, v)),
    fc.constantFrom("0", "-1", "1e308", "abc", "0.001", "1", "NaN").map((v) => replacing(headers, "keepalive-ping-interval", v)),
    fc.constant(without(headers, "te")),
    fc.string({ maxLength: 40 }).map((v) => replacing(headers, "user-agent", v.replace(/[\r\n]/g, ""))),
  ];
  if (!mayStayOpen) {
    spoils.push(
      fc.constantFrom("9999999999", "0", "1").map((v) => replacing(headers, "connect-timeout-ms", v)),
      fc.constantFrom("99999999H", "0n", "1u").map((v) => replacing(headers, "grpc-timeout", v)),
    );
  }
  return fc.oneof(...spoils);
}

// ---- one request ---------------------------------------------------------------------------------

function requestFor(ctx: FuzzContext, family: ConnectFamily, method: DescMethod): fc.Arbitrary<RequestSpec> {
  const overrides = hasRule(method) ? requestOverrides(ctx) : unknownRpcOverrides(ctx);
  const message = messageOf(method.input, overrides);
  const messages = method.methodKind === "client_streaming" ? fc.array(message, { minLength: 1, maxLength: 4 }) : message.map((m) => [m]);
  const codec: fc.Arbitrary<Codec> =
    family === "connect-json" ? fc.constant("json") : family === "connect-binary" ? fc.constant("proto") : fc.constantFrom("json", "proto");
  const mayStayOpen = ruleFor(method).staysOpen !== undefined;
  const path = `/${method.parent.typeName}/${method.name}`;

  return fc
    .tuple(codec, messages)
    .chain(([c, ms]) => fc.tuple(shapes(method, c, family === "envelope"), payloads(method, family, c, ms)))
    .chain(([shape, bodies]) =>
      fc.tuple(
        fc.constant(shape),
        shape.protocol === "connect" && method.methodKind === "unary" ? unaryBody(path, shape, bodies[0]!) : framedBody(path, shape, family, bodies),
        deadlineHeaders(mayStayOpen, shape.protocol),
      ),
    )
    .chain(([shape, body, deadlines]) => {
      const headers = [...baseHeaders(ctx, shape), ...deadlines, ...body.encodingHeaders];
      const finalHeaders = fc.oneof({ weight: 3, arbitrary: fc.constant(headers) }, { weight: 1, arbitrary: spoiledHeaders(headers, mayStayOpen) });
      return finalHeaders.map(
        (h): RequestSpec => ({
          family,
          transport: shape.transport,
          method: shape.get ? "GET" : "POST",
          target: body.target,
          headers: h,
          body: shape.get ? [] : [body.body],
          ...(body.cutAfter === undefined ? {} : { cutAfter: body.cutAfter }),
        }),
      );
    })
    .map((spec) => defusedIfUnsafe(spec, method, ctx));
}

/**
 * A request the agent must not act on keeps its shape and headers but loses its message: one NUL
 * byte, which no protocol decodes (too short for a frame, not JSON, field number 0 in binary).
 */
function defusedIfUnsafe(spec: RequestSpec, method: DescMethod, ctx: FuzzContext): RequestSpec {
  if (unsafeRequest(spec, method, ctx) === undefined) return spec;
  const defused: RequestSpec = {
    family: spec.family,
    transport: spec.transport,
    method: "POST",
    target: spec.target.split("?")[0]!,
    headers: spec.headers,
    body: [Uint8Array.of(0)],
  };
  const still = unsafeRequest(defused, method, ctx);
  if (still !== undefined) throw new Error(`defused request to ${spec.target} is still unsafe: ${still}`);
  return defused;
}
