/**
 * Properties of the Range parser (RFC 9110 §14): whatever the header, it answers one of its three
 * verdicts without throwing, a partial range lies inside the file, and well-formed headers get
 * exactly the verdict the RFC gives them — with positions compared as the integers they spell,
 * however many digits that takes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { contentRange, parseRange, type RangeRequest } from "../../../src/http/range.js";

const RUNS = 2_000;

const sizes = fc.oneof(fc.constant(0), fc.constant(1), fc.nat(100), fc.nat(1_000_000), fc.constant(Number.MAX_SAFE_INTEGER));

/** A decimal position: small, around a size, or far beyond what a double holds exactly. */
const digits = fc.oneof(
  fc.nat(200).map(String),
  fc.bigInt({ min: 0n, max: 2n ** 70n }).map(String),
  fc.bigInt({ min: 2n ** 53n - 2n, max: 2n ** 53n + 4n }).map(String),
  fc.tuple(fc.nat(3), fc.nat(50)).map(([zeros, n]) => `${"0".repeat(zeros)}${n}`),
  fc.integer({ min: 300, max: 400 }).map((n) => "9".repeat(n)),
);

const ows = fc.constantFrom("", " ", "\t", "  ");

const anyHeader = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: "binary", maxLength: 60 }),
  fc
    .tuple(
      fc.constantFrom("bytes=", "BYTES=", "bytes =", "bits=", "="),
      fc.string({ unit: fc.constantFrom("0", "1", "9", "-", ",", " ", "\t", "a", "+", "e"), maxLength: 40 }),
    )
    .map(([u, s]) => u + s),
);

function checkShape(result: RangeRequest, size: number): void {
  expect(["full", "partial", "unsatisfiable"]).toContain(result.kind);
  if (result.kind === "partial") {
    expect(Number.isSafeInteger(result.start)).toBe(true);
    expect(Number.isSafeInteger(result.end)).toBe(true);
    expect(result.start).toBeGreaterThanOrEqual(0);
    expect(result.start).toBeLessThanOrEqual(result.end);
    expect(result.end).toBeLessThan(size);
    expect(contentRange(result, size)).toMatch(/^bytes \d+-\d+\/\d+$/);
  }
}

const big = (text: string): bigint => BigInt(text);

/** The RFC's verdict for one well-formed `first-last` spec on its own. */
function expectedClosed(first: string, last: string, size: number): RangeRequest {
  if (big(last) < big(first)) return { kind: "full" }; // invalid: the header is ignored
  if (big(first) >= BigInt(size)) return { kind: "unsatisfiable" };
  const end = big(last) < BigInt(size) ? Number(last) : size - 1;
  return { kind: "partial", start: Number(first), end };
}

describe("parseRange: any header", () => {
  it("never throws, and a partial range lies inside [0, size)", () => {
    fc.assert(
      fc.property(fc.option(anyHeader, { nil: undefined }), sizes, (header, size) => {
        checkShape(parseRange(header, size), size);
      }),
      { numRuns: RUNS },
    );
  });

  it("ignores headers in other units or without '='", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 40 }).filter((s) => !s.includes("=") || s.slice(0, s.indexOf("=")).trim().toLowerCase() !== "bytes"),
        sizes,
        (header, size) => {
          expect(parseRange(header, size)).toEqual({ kind: "full" });
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("parseRange: well-formed headers", () => {
  it("answers first-last exactly as RFC 9110 does, for positions of any length", () => {
    fc.assert(
      fc.property(digits, digits, sizes, ows, ows, (first, last, size, before, after) => {
        expect(parseRange(`bytes=${before}${first}-${last}${after}`, size)).toEqual(expectedClosed(first, last, size));
      }),
      { numRuns: RUNS },
    );
  });

  it("answers first- (to the end) and -suffix (the last bytes)", () => {
    fc.assert(
      fc.property(digits, sizes, (n, size) => {
        const open = parseRange(`bytes=${n}-`, size);
        expect(open).toEqual(big(n) >= BigInt(size) ? { kind: "unsatisfiable" } : { kind: "partial", start: Number(n), end: size - 1 });
        const suffix = parseRange(`bytes=-${n}`, size);
        if (big(n) === 0n || size === 0) expect(suffix).toEqual({ kind: "unsatisfiable" });
        else expect(suffix).toEqual({ kind: "partial", start: big(n) >= BigInt(size) ? 0 : size - Number(n), end: size - 1 });
      }),
      { numRuns: RUNS },
    );
  });

  it("answers several ranges with the whole file, or 416 when none can be satisfied", () => {
    const spec = fc.oneof(
      fc.tuple(digits, digits).map(([a, b]) => (big(a) <= big(b) ? `${a}-${b}` : `${b}-${a}`)),
      digits.map((a) => `${a}-`),
      digits.map((b) => `-${b}`),
    );
    fc.assert(
      fc.property(fc.array(spec, { minLength: 2, maxLength: 6 }), fc.constantFrom(",", ", ", " , ", ",,"), sizes, (specs, sep, size) => {
        const each = specs.map((s) => parseRange(`bytes=${s}`, size));
        const all = parseRange(`bytes=${specs.join(sep)}`, size);
        expect(all).toEqual(each.every((r) => r.kind === "unsatisfiable") ? { kind: "unsatisfiable" } : { kind: "full" });
      }),
      { numRuns: RUNS },
    );
  });

  it("ignores the whole header when any one range-spec is malformed", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(digits, digits).map(([a, b]) => `${a}-${b}`),
          { maxLength: 3 },
        ),
        fc.constantFrom("-", "a-b", "1-2-3", "--5", "+5-", "0x1-2", "1e3-", "5 5-6", "١-٢"),
        fc.nat(3),
        sizes,
        (good, bad, at, size) => {
          const specs = [...good];
          specs.splice(at % (good.length + 1), 0, bad);
          expect(parseRange(`bytes=${specs.join(",")}`, size)).toEqual({ kind: "full" });
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("parseRange: regressions", () => {
  it("treats last < first as invalid even where doubles cannot tell them apart", () => {
    // 2^53 + 1 and 2^53 are the same double: the range looked valid and got a 416.
    expect(parseRange("bytes=9007199254740993-9007199254740992", 100)).toEqual({ kind: "full" });
    expect(parseRange("bytes=18446744073709551617-18446744073709551616", 100)).toEqual({ kind: "full" });
  });
});
