/**
 * Random protobuf messages of any type, built from its descriptor: every field kind (scalars at
 * their extremes, enums with values the schema does not name, nested messages, oneofs, huge lists
 * and maps), so a field or an RPC added to the proto is fuzzed without anyone writing a generator.
 *
 * A caller pins the fields whose values must be chosen with care (paths that must stay in a
 * scratch directory, commands from an allow-list) with `overrides`.
 */
import fc from "fast-check";

/**
 * envd's services carry the agent's own messages under the packages `filesystem` and `process`
 * (src/e2b/bridge.ts): their fields and RPCs are fuzzed by the agent's rules.
 */
export function ownTypeName(typeName: string): string {
  return typeName.replace(/^(filesystem|process)\./, "sandboxagent.");
}
import { create, ScalarType, type DescEnum, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";

export interface MessageOverrides {
  /** Whole messages by type name ("sandboxagent.ProcessConfig"): an init object for `create`. */
  readonly messages?: Readonly<Record<string, fc.Arbitrary<Record<string, unknown>>>>;
  /** Single fields by "<type name>.<proto field name>": the value as `create` takes it (undefined: unset). */
  readonly fields?: Readonly<Record<string, fc.Arbitrary<unknown>>>;
  /** Every other string (fields, list items, map keys and values); `awkwardString` by default. */
  readonly strings?: fc.Arbitrary<string>;
}

/** Nesting beyond this is left empty: recursive types would otherwise never end. */
const MAX_DEPTH = 4;

export const LARGE_STRING_BYTES = 256 * 1024;

const int32 = fc.oneof(fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31)), fc.integer());
const uint32 = fc.oneof(fc.constantFrom(0, 1, 2 ** 31, 2 ** 32 - 1, 65535, 65536), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
const int64 = fc.oneof(fc.constantFrom(0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
const uint64 = fc.oneof(fc.constantFrom(0n, 2n ** 64n - 1n, 2n ** 53n + 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const double = fc.oneof(fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, Number.MAX_VALUE, Number.MIN_VALUE), fc.double());
const float = fc.oneof(fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0, 3.4028234663852886e38), fc.float());

/** Strings a parser or a path resolver may trip on, besides random ones. */
export const awkwardString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("", " ", "\0", "a\0b", "..", "~", "\u{1F600}", "\uD800", "\uFFFE", "\r\n", "%00", "${HOME}", "'\"`$(true)`", "\u202E"),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: LARGE_STRING_BYTES }).map((n) => "x".repeat(n)) },
);

const bytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: LARGE_STRING_BYTES }).map((n) => new Uint8Array(n).fill(0x61)) },
);

function scalar(type: ScalarType, strings: fc.Arbitrary<string> = awkwardString): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.DOUBLE:
      return double;
    case ScalarType.FLOAT:
      return float;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return int64;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return uint64;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return int32;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return uint32;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.STRING:
      return strings;
    case ScalarType.BYTES:
      return bytes;
  }
}

/** Named values mostly, and now and then a number the enum does not name (open enums keep it). */
function enumValue(desc: DescEnum): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...desc.values.map((v) => v.number)) },
    { weight: 1, arbitrary: fc.oneof(fc.constantFrom(-1, 2 ** 31 - 1, -(2 ** 31)), fc.integer({ min: -1000, max: 1000 })) },
  );
}

/** Map keys as `create` takes them: object keys, so numbers and booleans as their strings. */
function mapKey(type: ScalarType, strings: fc.Arbitrary<string>): fc.Arbitrary<string> {
  if (type === ScalarType.STRING) return strings;
  if (type === ScalarType.BOOL) return fc.constantFrom("true", "false");
  return (scalar(type) as fc.Arbitrary<number | bigint>).map(String);
}

/** Collections: usually a few entries, sometimes thousands. */
function sized<T>(item: fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.array(item, { maxLength: 4 }) },
    { weight: 1, arbitrary: fc.tuple(item, fc.integer({ min: 100, max: 5_000 })).map(([one, n]) => Array.from({ length: n }, () => one)) },
  );
}

const pinnedField = (field: DescField, overrides: MessageOverrides): boolean =>
  `${ownTypeName(field.parent.typeName)}.${field.name}` in (overrides.fields ?? {});

function fieldValue(field: DescField, overrides: MessageOverrides, depth: number): fc.Arbitrary<unknown> {
  const pinned = overrides.fields?.[`${ownTypeName(field.parent.typeName)}.${field.name}`];
  if (pinned !== undefined) return pinned;
  const strings = overrides.strings ?? awkwardString;
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar, strings);
    case "enum":
      return enumValue(field.enum);
    case "message":
      return messageInit(field.message, overrides, depth + 1);
    case "list":
      if (field.listKind === "scalar") return sized(scalar(field.scalar, strings));
      if (field.listKind === "enum") return sized(enumValue(field.enum));
      return depth >= MAX_DEPTH ? fc.constant([]) : fc.array(messageInit(field.message, overrides, depth + 1), { maxLength: 3 });
    case "map": {
      const value =
        field.mapKind === "scalar"
          ? scalar(field.scalar, strings)
          : field.mapKind === "enum"
            ? enumValue(field.enum)
            : depth >= MAX_DEPTH
              ? fc.constant({})
              : messageInit(field.message, overrides, depth + 1);
      return sized(fc.tuple(mapKey(field.mapKey, strings), value)).map((entries) => Object.fromEntries(entries));
    }
  }
}

/** An init object for `create(desc, init)`: each field present or not, oneofs with one case set. */
export function messageInit(desc: DescMessage, overrides: MessageOverrides = {}, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const whole = overrides.messages?.[ownTypeName(desc.typeName)];
  if (whole !== undefined) return whole;
  if (depth > MAX_DEPTH) return fc.constant({});
  const parts: fc.Arbitrary<[string, unknown] | undefined>[] = [];
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      const cases = member.fields.map((f) =>
        fieldValue(f, overrides, depth).map((value): [string, unknown] => [member.localName, { case: f.localName, value }]),
      );
      parts.push(fc.option(fc.oneof(...cases), { nil: undefined }));
    } else {
      const value = fieldValue(member, overrides, depth).map((v): [string, unknown] => [member.localName, v]);
      // A pinned field is always set (its arbitrary may give undefined to leave it out): left out,
      // a path field would be "", the home directory.
      parts.push(pinnedField(member, overrides) ? value : fc.option(value, { nil: undefined, freq: 3 }));
    }
  }
  return fc.tuple(...parts).map((entries) => Object.fromEntries(entries.filter((e): e is [string, unknown] => e !== undefined && e[1] !== undefined)));
}

/** A message built from `messageInit`; an init `create` refuses falls back to the empty message. */
export function messageOf(desc: DescMessage, overrides: MessageOverrides = {}): fc.Arbitrary<Message> {
  return messageInit(desc, overrides).map((init) => {
    try {
      return create(desc, init);
    } catch {
      return create(desc);
    }
  });
}
