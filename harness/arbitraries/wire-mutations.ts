/**
 * Bodies a broken or hostile client could send for a message type: the message encoded right,
 * then the same with the mistakes parsers trip on. JSON: wrong types, unknown and duplicate
 * fields, deep nesting, invalid UTF-8, truncation. Binary: truncated and overlong varints, wrong
 * wire types, invalid UTF-8 in strings, lengths past the end, deep groups, random bytes.
 * Frames: lying lengths, stray flags, cut-off headers, several messages where one is expected.
 */
import fc from "fast-check";
import { toBinary, toJson, ScalarType, type DescField, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";
import { gzipSync } from "node:zlib";

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const concat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);

// ---- JSON --------------------------------------------------------------------------------------

/** JSON names of a message's fields and of its message fields' fields: where a mutation may land. */
function jsonPaths(desc: DescMessage, protoNames: boolean, depth = 0): string[][] {
  const out: string[][] = [];
  for (const field of desc.fields) {
    const name = protoNames ? field.name : field.jsonName;
    out.push([name]);
    if (depth < 1 && field.fieldKind === "message") out.push(...jsonPaths(field.message, protoNames, depth + 1).map((p) => [name, ...p]));
  }
  return out;
}

function setAt(root: Record<string, JsonValue>, path: readonly string[], value: JsonValue): void {
  let node = root;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, JsonValue>;
  }
  node[path.at(-1)!] = value;
}

/** Values of every JSON type, and the ones proto3 JSON parsing has rules about. */
const wrongValue: fc.Arbitrary<JsonValue> = fc.constantFrom<JsonValue>(
  0,
  -1,
  1.5,
  2 ** 53,
  -(2 ** 63),
  1e300,
  "",
  "str",
  "NaN",
  "Infinity",
  "-0",
  "1e3",
  "0x10",
  "12abc",
  "99999999999999999999999",
  true,
  false,
  null,
  [],
  [1, "a", null],
  {},
  { a: 1 },
  "AAAA",
  "!!!not-base64",
  "SIGNAL_SIGKILL",
  "FILE_TYPE_NOPE",
  4294967296,
);

/** Text spliced in where a value goes: things JSON.stringify cannot produce. */
const RAW_VALUES = ["1e400", "-1e400", "NaN", "Infinity", "01", "1.", ".5", "+1", "0x10", "'single'", '"\\ud800"', '"\\u0000"', '"\\x41"'];
const PLACEHOLDER = '"@@fuzz-placeholder@@"';

export function jsonBodies(desc: DescMessage, message: Message): fc.Arbitrary<Uint8Array> {
  const valid = (options: { useProtoFieldName?: boolean; enumAsInteger?: boolean; alwaysEmitImplicit?: boolean }) =>
    toJson(desc, message, options) as Record<string, JsonValue>;
  const paths = [...jsonPaths(desc, false), ...jsonPaths(desc, true)];
  const anyPath = paths.length > 0 ? fc.constantFrom(...paths) : fc.constant(["unknownField"]);
  const options = fc.record({ useProtoFieldName: fc.boolean(), enumAsInteger: fc.boolean(), alwaysEmitImplicit: fc.boolean() });
  const text = (json: JsonValue): Uint8Array => utf8(JSON.stringify(json));
  const spliced = (path: readonly string[], raw: string): Uint8Array => {
    const json = valid({});
    setAt(json, path, "@@fuzz-placeholder@@");
    return utf8(JSON.stringify(json).replace(PLACEHOLDER, raw));
  };
  return fc.oneof(
    { weight: 12, arbitrary: options.map((o) => text(valid(o))) },
    // Wrong types where fields go.
    {
      weight: 4,
      arbitrary: fc.tuple(anyPath, wrongValue).map(([path, value]) => {
        const json = valid({});
        setAt(json, path, value);
        return text(json);
      }),
    },
    { weight: 2, arbitrary: fc.tuple(anyPath, fc.constantFrom(...RAW_VALUES)).map(([path, raw]) => spliced(path, raw)) },
    // Unknown fields (ignored by the agent), some with names that mean something to JavaScript.
    {
      weight: 2,
      arbitrary: fc
        .dictionary(fc.oneof(fc.constantFrom("__proto__", "constructor", "prototype", "toString", "$typeName", ""), fc.string()), wrongValue, {
          minKeys: 1,
          maxKeys: 4,
        })
        .map((extra) => {
          const json = valid({});
          return utf8(
            JSON.stringify(json)
              .replace(
                /^\{/,
                `{${Object.entries(extra)
                  .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)},`)
                  .join("")}`,
              )
              .replace(/,\}$/, "}"),
          );
        }),
    },
    // Deep nesting, in a field and as the whole body.
    {
      weight: 2,
      arbitrary: fc
        .tuple(anyPath, fc.constantFrom(100, 5_000, 200_000), fc.boolean())
        .map(([path, depth, arrays]) => spliced(path, arrays ? `${"[".repeat(depth)}${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`)),
    },
    { weight: 1, arbitrary: fc.constantFrom(1_000, 500_000).map((depth) => utf8(`${"[".repeat(depth)}${"]".repeat(depth)}`)) },
    // Invalid UTF-8 inside a string value.
    {
      weight: 2,
      arbitrary: fc.tuple(anyPath, fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82])).map(([path, bad]) => {
        const json = valid({});
        setAt(json, path, "@@fuzz-placeholder@@");
        const [before, after] = JSON.stringify(json).split("@@fuzz-placeholder@@") as [string, string];
        return concat(utf8(before), Uint8Array.from(bad), utf8(after));
      }),
    },
    // The same key twice, a oneof with two members, a JSON document that is not an object.
    {
      weight: 1,
      arbitrary: anyPath.map((path) => {
        const json = JSON.stringify(valid({}));
        return utf8(json.length > 2 ? `{${JSON.stringify(path[0])}:1,${json.slice(1)}` : `{${JSON.stringify(path[0])}:1,${JSON.stringify(path[0])}:"x"}`);
      }),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          "",
          " ",
          "null",
          "[]",
          "0",
          '"str"',
          "true",
          "{",
          "}",
          '{"a":}',
          "{,}",
          "{}{}",
          "{} trailing",
          "\uFEFF{}",
          "/* c */{}",
          "{'a':1}",
          '{"a":1,}',
        )
        .map(utf8),
    },
    // Cut short, or followed by garbage.
    {
      weight: 2,
      arbitrary: fc.tuple(options, fc.nat()).map(([o, n]) => {
        const full = text(valid(o));
        return full.subarray(0, full.length === 0 ? 0 : n % full.length);
      }),
    },
    { weight: 1, arbitrary: fc.tuple(options, fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([o, junk]) => concat(text(valid(o)), junk)) },
  );
}

// ---- binary ------------------------------------------------------------------------------------

const Wire = { Varint: 0, Fixed64: 1, Len: 2, StartGroup: 3, EndGroup: 4, Fixed32: 5 } as const;

export function varint(value: bigint | number): Uint8Array {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Uint8Array.from(out);
}

const tag = (field: number | bigint, wire: number): Uint8Array => varint((BigInt(field) << 3n) | BigInt(wire));
const lengthDelimited = (field: number, payload: Uint8Array): Uint8Array => concat(tag(field, Wire.Len), varint(payload.length), payload);

/** The wire type a field is written with; a mutation picks any other. */
function wireOf(field: DescField): number {
  if (field.fieldKind === "message" || field.fieldKind === "map") return Wire.Len;
  if (field.fieldKind === "list")
    return field.listKind === "message" || field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES ? Wire.Len : Wire.Varint;
  if (field.fieldKind === "enum") return Wire.Varint;
  switch (field.scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return Wire.Len;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return Wire.Fixed64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return Wire.Fixed32;
    default:
      return Wire.Varint;
  }
}

/** A field of the given wire type with a well-formed payload for that type. */
function fieldOfWire(field: number, wire: number): Uint8Array {
  switch (wire) {
    case Wire.Varint:
      return concat(tag(field, wire), varint(300));
    case Wire.Fixed64:
      return concat(tag(field, wire), new Uint8Array(8).fill(0x41));
    case Wire.Len:
      return lengthDelimited(field, utf8("abc"));
    case Wire.Fixed32:
      return concat(tag(field, wire), new Uint8Array(4).fill(0x41));
    case Wire.StartGroup:
      return concat(tag(field, Wire.StartGroup), tag(field, Wire.EndGroup));
    default:
      return tag(field, wire);
  }
}

export function binaryBodies(desc: DescMessage, message: Message): fc.Arbitrary<Uint8Array> {
  const valid = toBinary(desc, message);
  const numbers = desc.fields.map((f) => f.number);
  const fieldNumber = numbers.length > 0 ? fc.oneof(fc.constantFrom(...numbers), fc.integer({ min: 1, max: 20 })) : fc.integer({ min: 1, max: 20 });
  const strings = desc.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING).map((f) => f.number);
  const nested = desc.fields
    .filter((f) => f.fieldKind === "message" || f.fieldKind === "map" || (f.fieldKind === "list" && f.listKind === "message"))
    .map((f) => f.number);
  const anyOf = (list: number[]) => (list.length > 0 ? fc.constantFrom(...list) : fieldNumber);
  const appended = (tail: fc.Arbitrary<Uint8Array>) => fc.tuple(fc.boolean(), tail).map(([keep, t]) => (keep ? concat(valid, t) : t));
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant(valid) },
    // Cut anywhere (mid-varint, mid-string), or with a varint that never ends.
    { weight: 2, arbitrary: fc.nat().map((n) => valid.subarray(0, valid.length === 0 ? 0 : n % valid.length)) },
    { weight: 2, arbitrary: appended(fieldNumber.map((f) => concat(tag(f, Wire.Varint), Uint8Array.of(0x80, 0x80, 0x80)))) },
    { weight: 1, arbitrary: appended(fieldNumber.map((f) => concat(tag(f, Wire.Varint), new Uint8Array(11).fill(0xff)))) },
    // A known field written with another wire type, including the two that do not exist.
    {
      weight: 3,
      arbitrary: appended(
        fc.tuple(fc.constantFrom(...(desc.fields.length > 0 ? desc.fields : [undefined])), fc.integer({ min: 0, max: 7 })).map(([field, wire]) => {
          const number = field?.number ?? 1;
          return fieldOfWire(number, field !== undefined && wire === wireOf(field) ? (wire + 1) % 8 : wire);
        }),
      ),
    },
    // Invalid UTF-8 in a string field; garbage in a message field.
    {
      weight: 2,
      arbitrary: appended(
        fc
          .tuple(anyOf(strings), fc.constantFrom([0xff, 0xfe], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0x80]))
          .map(([f, bad]) => lengthDelimited(f, Uint8Array.from(bad))),
      ),
    },
    { weight: 2, arbitrary: appended(fc.tuple(anyOf(nested), fc.uint8Array({ minLength: 1, maxLength: 32 })).map(([f, junk]) => lengthDelimited(f, junk))) },
    // Lengths past the end, field numbers out of range, groups nested deep or never opened.
    {
      weight: 2,
      arbitrary: appended(
        fc.tuple(fieldNumber, fc.constantFrom(5, 1_000, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 35)).map(([f, n]) => concat(tag(f, Wire.Len), varint(n), utf8("ab"))),
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom(0n, 2n ** 29n, 2n ** 32n).map((f) => concat(tag(f, Wire.Varint), varint(1))) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(10, 3_000, 100_000).map((depth) => Buffer.concat(Array.from({ length: depth }, () => tag(1000, Wire.StartGroup)))),
    },
    { weight: 1, arbitrary: appended(fieldNumber.map((f) => tag(f, Wire.EndGroup))) },
    // Unknown fields written correctly, repeated scalars packed, the message twice (merged).
    { weight: 1, arbitrary: appended(fc.uint8Array({ maxLength: 64 }).map((junk) => lengthDelimited(1000, junk))) },
    { weight: 1, arbitrary: fc.constant(concat(valid, valid)) },
    // Bits flipped, random bytes, nothing.
    {
      weight: 2,
      arbitrary: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }).map((flips) => {
        const out = Uint8Array.from(valid);
        for (const flip of flips) if (out.length > 0) out[flip % out.length]! ^= 1 << (flip % 8);
        return out;
      }),
    },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  );
}

// ---- frames ------------------------------------------------------------------------------------

export function frame(flags: number, payload: Uint8Array, declaredLength = payload.length): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, declaredLength >>> 0);
  out.set(payload, 5);
  return out;
}

export interface Framed {
  readonly body: Uint8Array;
  /** Set when the frames are compressed: the encoding the request must name. */
  readonly encoding?: string;
  /** Names an encoding although nothing is compressed, or lies about it. */
  readonly claimsEncoding?: string;
}

export const COMPRESSED_FLAG = 0x01;

/** Frames a client should send: one per message, uncompressed or gzipped. */
export function wellFramed(messages: readonly Uint8Array[]): fc.Arbitrary<Framed> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.constant({ body: concat(...messages.map((m) => frame(0, m))) }) },
    { weight: 1, arbitrary: fc.constant({ body: concat(...messages.map((m) => frame(COMPRESSED_FLAG, gzipSync(m)))), encoding: "gzip" }) },
  );
}

/**
 * Frames a client should not send. `endFlag` is the protocol's end-of-stream/trailer flag (0x02
 * Connect, 0x80 gRPC-web); from a client it must be refused.
 */
export function badlyFramed(messages: readonly Uint8Array[], endFlag: number): fc.Arbitrary<Framed> {
  const first = messages[0] ?? new Uint8Array(0);
  const good = concat(...messages.map((m) => frame(0, m)));
  return fc.oneof(
    // Flags: compressed without an encoding, compressed with an encoding but not compressed, stray bits, end of stream.
    { weight: 2, arbitrary: fc.constant({ body: frame(COMPRESSED_FLAG, first) }) },
    { weight: 2, arbitrary: fc.constantFrom("gzip", "br").map((encoding) => ({ body: frame(COMPRESSED_FLAG, first), encoding })) },
    { weight: 1, arbitrary: fc.constant({ body: frame(COMPRESSED_FLAG, gzipSync(first).subarray(0, 12)), encoding: "gzip" }) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(0x04, 0x08, 0x10, 0x40, 0x7c, 0xfe, 0xff, endFlag, endFlag | COMPRESSED_FLAG).map((flags) => ({ body: frame(flags, first) })),
    },
    { weight: 1, arbitrary: fc.constant({ body: concat(good, frame(endFlag, utf8("{}"))) }) },
    // Lengths: more than is there, near 2^32 - 1, at and past the agent's 64 MiB limit.
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 100_000 }).map((extra) => ({ body: frame(0, first, first.length + extra) })) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(2 ** 32 - 1, 2 ** 32 - 2, 2 ** 31 - 1, 2 ** 31, 64 * 2 ** 20, 64 * 2 ** 20 + 1)
        .map((length) => ({ body: frame(0, first, length) })),
    },
    // Cut short: a header alone, part of a header, part of a payload.
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 4 }).map((n) => ({ body: frame(0, first).subarray(0, n) })) },
    { weight: 1, arbitrary: fc.constant({ body: frame(0, first).subarray(0, 5) }) },
    { weight: 1, arbitrary: fc.nat().map((n) => ({ body: frame(0, first).subarray(0, 5 + (first.length === 0 ? 0 : n % first.length)) })) },
    // Several messages, empty ones, none, garbage after the last.
    { weight: 2, arbitrary: fc.integer({ min: 2, max: 5 }).map((n) => ({ body: concat(...Array.from({ length: n }, () => frame(0, first))) })) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((n) => ({ body: concat(...Array.from({ length: n }, () => frame(0, new Uint8Array(0)))) })) },
    { weight: 1, arbitrary: fc.constant({ body: new Uint8Array(0) }) },
    { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 16 }).map((junk) => ({ body: concat(good, junk) })) },
    // An encoding named (or unknown) while the frames are plain.
    { weight: 1, arbitrary: fc.constantFrom("gzip", "br", "zstd", "identity", "gzip, br", "").map((claimsEncoding) => ({ body: good, claimsEncoding })) },
  );
}
