/**
 * Properties of HTTP-date parsing (If-Modified-Since, If-Unmodified-Since, If-Range): the three
 * forms of RFC 9110 §5.6.7 give the instant they spell, in UTC whatever the machine's zone, and
 * anything else is not a date — so the condition that carries it is ignored, never decided.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { evaluatePreconditions, rangeAllowed, type Conditions, type Validators } from "../../../src/http/conditional.js";
import { httpDateSeconds } from "../../../src/http/http-date.js";

const RUNS = 2_000;

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const pad = (n: number, width = 2, fill = "0"): string => String(n).padStart(width, fill);

/** Whole seconds from year 1000 to 9999, the years an HTTP-date can spell. */
const instants = fc.integer({ min: Date.UTC(1000, 0, 1) / 1000, max: Date.UTC(9999, 11, 31, 23, 59, 59) / 1000 });

const parts = (seconds: number) => {
  const d = new Date(seconds * 1000);
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return { d, time, day: DAYS[d.getUTCDay()]!, month: MONTHS[d.getUTCMonth()]! };
};
const imfFixdate = (seconds: number): string => new Date(seconds * 1000).toUTCString();
const rfc850 = (seconds: number): string => {
  const { d, time, day, month } = parts(seconds);
  return `${day}, ${pad(d.getUTCDate())}-${month}-${pad(d.getUTCFullYear() % 100)} ${time} GMT`;
};
const asctime = (seconds: number): string => {
  const { d, time, day, month } = parts(seconds);
  return `${day.slice(0, 3)} ${month} ${pad(d.getUTCDate(), 2, " ")} ${time} ${d.getUTCFullYear()}`;
};

/** Values that look like dates to Date.parse but are not HTTP-dates. */
const notHttpDates = fc.oneof(
  fc.nat(3000).map(String),
  fc.integer({ min: 0, max: 4_000_000_000 }).map(String),
  instants.map((s) => new Date(s * 1000).toISOString()),
  instants.map((s) => new Date(s * 1000).toString()),
  instants.map((s) => imfFixdate(s).replace("GMT", "UTC")),
  instants.map((s) => imfFixdate(s).replace("GMT", "PST")),
  instants.map((s) => imfFixdate(s).toLowerCase()),
  instants.map((s) => imfFixdate(s).replace(/^\w+, /, "")),
  fc
    .tuple(
      fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s.trim() !== ""),
      instants,
    )
    .map(([junk, s]) => `${junk} ${imfFixdate(s)}`),
  fc
    .tuple(
      instants,
      fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s.trim() !== ""),
    )
    .map(([s, junk]) => `${imfFixdate(s)} ${junk}`),
  fc.constantFrom(
    "garbage 2020",
    "x 5",
    "6 Nov 1994",
    "yesterday",
    "",
    "Sun, 31 Feb 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 24:00:00 GMT",
    "Sun, 06 Nov 94 08:49:37 GMT",
  ),
);

describe("httpDateSeconds", () => {
  it("reads IMF-fixdate and asctime-date as the instant they spell", () => {
    fc.assert(
      fc.property(instants, (s) => {
        expect(httpDateSeconds(imfFixdate(s))).toBe(s);
        expect(httpDateSeconds(asctime(s))).toBe(s);
        expect(httpDateSeconds(` ${imfFixdate(s)}\t`)).toBe(s);
      }),
      { numRuns: RUNS },
    );
  });

  it("reads rfc850-date, whose two-digit year is within 50 years of now", () => {
    const now = new Date().getUTCFullYear();
    const near = fc.integer({ min: Date.UTC(now - 49, 0, 1) / 1000, max: Date.UTC(now + 49, 11, 31) / 1000 });
    fc.assert(
      fc.property(near, (s) => {
        expect(httpDateSeconds(rfc850(s))).toBe(s);
      }),
      { numRuns: RUNS },
    );
  });

  it("finds no date in anything else", () => {
    fc.assert(
      fc.property(notHttpDates, (value) => {
        expect(httpDateSeconds(value)).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });
});

describe("conditions with a value that is not an HTTP-date", () => {
  const none: Conditions = { ifMatch: undefined, ifNoneMatch: undefined, ifModifiedSince: undefined, ifUnmodifiedSince: undefined, ifRange: undefined };
  const validators = instants.map((s): Validators => ({ etag: '"e"', lastModified: imfFixdate(s), modifiedSeconds: s }));

  it("are ignored: the file is sent, and a Range on it is honoured only by a matching validator", () => {
    fc.assert(
      fc.property(notHttpDates, validators, (value, v) => {
        expect(evaluatePreconditions({ ...none, ifModifiedSince: value }, v)).toBe("proceed");
        expect(evaluatePreconditions({ ...none, ifUnmodifiedSince: value }, v)).toBe("proceed");
        expect(rangeAllowed(value, v)).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('regression: "0" and "2099" were dates (Date.parse), which turned garbage into 412 and 304', () => {
    const v: Validators = { etag: '"e"', lastModified: imfFixdate(1_700_000_000), modifiedSeconds: 1_700_000_000 };
    expect(evaluatePreconditions({ ...none, ifUnmodifiedSince: "0" }, v)).toBe("proceed");
    expect(evaluatePreconditions({ ...none, ifModifiedSince: "2099" }, v)).toBe("proceed");
    expect(evaluatePreconditions({ ...none, ifModifiedSince: "garbage 2099" }, v)).toBe("proceed");
  });
});
