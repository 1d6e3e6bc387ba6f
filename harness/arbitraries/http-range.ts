/**
 * Family "range": downloads with Range headers — valid, several, suffix, open, inverted,
 * overflowing (2^53, 2^64, hundreds of digits, negative), other units, comma floods, odd
 * whitespace — and If-Range, If-None-Match, If-Match and the date conditions, valid or garbage.
 * Requests that can only be answered with the file or a 416 say so (`SERVED`).
 */
import fc from "fast-check";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { accessHeaders, encodedScratch, FIXTURE_FILE_BYTES, FIXTURES, forTransport, SERVED, transports, type Header } from "./http-common.js";

/** A position: small, near the file's size, or absurd. */
const position: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.nat(20).map(String), weight: 3 },
  { arbitrary: fc.integer({ min: FIXTURE_FILE_BYTES - 3, max: FIXTURE_FILE_BYTES + 3 }).map(String), weight: 3 },
  { arbitrary: fc.nat(2 * FIXTURE_FILE_BYTES).map(String), weight: 3 },
  {
    arbitrary: fc.constantFrom(
      "9007199254740991",
      "9007199254740992",
      "9007199254740993",
      "18446744073709551615",
      "18446744073709551616",
      "99999999999999999999999999",
      "9".repeat(400),
      "0".repeat(50),
      "00",
      "01",
    ),
    weight: 2,
  },
  { arbitrary: fc.constantFrom("-1", "+5", "1e3", "0x10", "1.5", "NaN", "Infinity", "١٢", "５", " 3", "3 "), weight: 1 },
);

/** One range-spec, well-formed or not. */
const rangeSpec: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.tuple(position, position).map(([a, b]) => `${a}-${b}`), weight: 4 },
  { arbitrary: position.map((a) => `${a}-`), weight: 2 },
  { arbitrary: position.map((b) => `-${b}`), weight: 2 },
  { arbitrary: fc.tuple(fc.nat(FIXTURE_FILE_BYTES * 2), fc.nat(100)).map(([a, d]) => `${a + d + 1}-${a}`), weight: 1 },
  { arbitrary: fc.constantFrom("-", "", "--5", "5--6", "1-2-3", "a-b", "0-0", "-0", "0-", " 0 - 1 ", "\t1-2", "1 -2"), weight: 2 },
);

const unit = fc.constantFrom("bytes", "bytes", "bytes", "BYTES", "Bytes", " bytes ", "byte", "bits", "items", "", "bytes;q=1", "bytes\t");

const separator = fc.constantFrom(",", ", ", " ,", ",,", ",\t", " , , ");

/** A whole Range header value. */
const rangeHeader: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.tuple(unit, rangeSpec).map(([u, spec]) => `${u}=${spec}`), weight: 6 },
  { arbitrary: fc.tuple(unit, fc.array(rangeSpec, { minLength: 2, maxLength: 4 }), separator).map(([u, specs, sep]) => `${u}=${specs.join(sep)}`), weight: 3 },
  { arbitrary: fc.integer({ min: 100, max: 20_000 }).map((n) => `bytes=${",".repeat(n)}0-1`), weight: 1 },
  { arbitrary: fc.integer({ min: 50, max: 2_000 }).map((n) => `bytes=${Array.from({ length: n }, (_, i) => `${i}-${i}`).join(",")}`), weight: 1 },
  { arbitrary: fc.constantFrom("bytes", "bytes=", "=0-1", "0-1", "bytes 0-1", "bytes==0-1", "bytes=0-1=2", ""), weight: 1 },
  { arbitrary: fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n\0]/g, "")), weight: 1 },
);

const etag = fc.constantFrom('"abc"', 'W/"abc"', '"', '""', "*", "W/", 'W/"', '"a", "b"', '"unterminated', ",,,", '*, "x"');
const httpDate = fc.oneof(
  fc.date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true }).map((d) => d.toUTCString()),
  fc.constantFrom(
    "garbage",
    "",
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994",
    "-1",
    "99999999999999",
    "Thu, 01 Jan 275760 00:00:00 GMT",
  ),
);

/** Conditional headers that may come with a Range. */
const someConditions: fc.Arbitrary<Header[]> = fc
  .record(
    {
      "if-range": fc.oneof(etag, httpDate),
      "if-none-match": etag,
      "if-match": etag,
      "if-modified-since": httpDate,
      "if-unmodified-since": httpDate,
    },
    { requiredKeys: [] },
  )
  .map((record) => Object.entries(record).filter((entry): entry is [string, string] => entry[1] !== undefined));

/** Mostly none: a garbage If-Match alone turns every request into a 412. */
const conditions: fc.Arbitrary<Header[]> = fc.oneof({ arbitrary: fc.constant<Header[]>([]), weight: 3 }, { arbitrary: someConditions, weight: 1 });

export function rangeRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  const target = fc.constantFrom(FIXTURES.file, FIXTURES.file, FIXTURES.file, FIXTURES.empty, FIXTURES.dir, "missing.bin");
  return fc
    .record({
      transport: transports,
      method: fc.constantFrom("GET", "GET", "GET", "HEAD"),
      // HTTP/1.1 servers must accept the absolute form too (RFC 9112 §3.2.2).
      absolute: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
      file: target,
      // Two Range headers arrive joined by a comma: several ranges.
      ranges: fc.oneof({ arbitrary: rangeHeader.map((r) => [r]), weight: 5 }, { arbitrary: fc.array(rangeHeader, { minLength: 2, maxLength: 2 }), weight: 1 }),
      conditions,
      access: accessHeaders(ctx),
    })
    .map(({ transport, method, absolute, file, ranges, conditions, access }) => {
      const headers: Header[] = [...access, ...ranges.map((r): Header => ["range", r]), ...conditions];
      // The token, an existing file, no conditions and headers HTTP can carry (printable ASCII: the
      // raw writer sends latin1, so "５" would arrive as a control byte): the file, or a 416.
      const sendable = ranges.every((r) => /^[\t\x20-\x7e]*$/.test(r));
      if (file === FIXTURES.file && sendable && conditions.length === 0 && access.some(([name, value]) => name === "x-access-token" && value === ctx.token)) {
        headers.push(SERVED);
      }
      const origin = absolute && transport === "http1" ? "http://agent" : "";
      return forTransport({ family: "range", transport, method, target: `${origin}/download/${encodedScratch(ctx)}/${file}`, headers });
    });
}
