/** The pure header logic of downloads: Range parsing, preconditions, Content-Disposition, types. */
import type { BigIntStats } from "node:fs";
import { describe, expect, it } from "vitest";
import { evaluatePreconditions, rangeAllowed, validatorsOf, type Conditions } from "../../../src/http/conditional.js";
import { attachment } from "../../../src/http/disposition.js";
import { contentTypeFor } from "../../../src/http/mime.js";
import { parseRange } from "../../../src/http/range.js";

describe("parseRange", () => {
  const full = { kind: "full" };
  const unsatisfiable = { kind: "unsatisfiable" };
  const partial = (start: number, end: number) => ({ kind: "partial", start, end });

  it("reads single, open-ended and suffix ranges", () => {
    expect(parseRange("bytes=0-0", 10)).toEqual(partial(0, 0));
    expect(parseRange("bytes=3-7", 10)).toEqual(partial(3, 7));
    expect(parseRange("bytes=3-", 10)).toEqual(partial(3, 9));
    expect(parseRange("bytes=-4", 10)).toEqual(partial(6, 9));
    expect(parseRange("bytes=-40", 10)).toEqual(partial(0, 9));
    expect(parseRange("bytes=8-400", 10)).toEqual(partial(8, 9));
  });

  it("accepts case and whitespace variations the grammar allows", () => {
    expect(parseRange("Bytes=1-2", 10)).toEqual(partial(1, 2));
    expect(parseRange("bytes= 1-2 ", 10)).toEqual(partial(1, 2));
    expect(parseRange("bytes=1-2,", 10)).toEqual(partial(1, 2));
  });

  it("finds nothing to satisfy past the end, in an empty file, or for a zero suffix", () => {
    expect(parseRange("bytes=10-", 10)).toEqual(unsatisfiable);
    expect(parseRange("bytes=10-20", 10)).toEqual(unsatisfiable);
    expect(parseRange("bytes=-0", 10)).toEqual(unsatisfiable);
    expect(parseRange("bytes=0-", 0)).toEqual(unsatisfiable);
    expect(parseRange("bytes=-5", 0)).toEqual(unsatisfiable);
    expect(parseRange("bytes=99999999999999999999999-", 10)).toEqual(unsatisfiable);
    expect(parseRange("bytes=20-30, 40-", 10)).toEqual(unsatisfiable);
  });

  it("ignores what is absent, malformed or in another unit", () => {
    for (const header of [
      undefined,
      "",
      "bytes",
      "bytes=",
      "bytes=,",
      "bytes=x-1",
      "bytes=5-1",
      "bytes=1-2-3",
      "bytes=--1",
      "items=0-1",
      "bytes 0-1",
      "bytes=0x1-2",
      "bytes=1.5-2",
    ]) {
      expect(parseRange(header, 10), String(header)).toEqual(full);
    }
  });

  it("answers several ranges, one of them satisfiable, with the whole file", () => {
    expect(parseRange("bytes=0-1,4-5", 10)).toEqual(full);
    expect(parseRange("bytes=0-1,40-50", 10)).toEqual(full);
  });
});

describe("preconditions", () => {
  const stats = { ino: 1234n, size: 10n, mtimeNs: 1_700_000_000_123_456_789n } as BigIntStats;
  const v = validatorsOf(stats);
  const none: Conditions = { ifMatch: undefined, ifNoneMatch: undefined, ifModifiedSince: undefined, ifUnmodifiedSince: undefined, ifRange: undefined };
  const at = (seconds: number): string => new Date(seconds * 1000).toUTCString();

  it("makes a strong ETag from inode, size and nanosecond mtime, and a second-precision date", () => {
    expect(v.etag).toBe(`"${(1234).toString(36)}-a-${(1_700_000_000_123_456_789n).toString(36)}"`);
    expect(v.modifiedSeconds).toBe(1_700_000_000);
    expect(v.lastModified).toBe(at(1_700_000_000));
    expect(validatorsOf({ ...stats, mtimeNs: stats.mtimeNs + 1n } as BigIntStats).etag).not.toBe(v.etag);
  });

  it("evaluates in RFC 9110 order", () => {
    expect(evaluatePreconditions(none, v)).toBe("proceed");
    expect(evaluatePreconditions({ ...none, ifNoneMatch: v.etag }, v)).toBe("not-modified");
    expect(evaluatePreconditions({ ...none, ifNoneMatch: `"x", ${v.etag}` }, v)).toBe("not-modified");
    expect(evaluatePreconditions({ ...none, ifNoneMatch: '"x"', ifModifiedSince: at(2_000_000_000) }, v)).toBe("proceed");
    expect(evaluatePreconditions({ ...none, ifModifiedSince: at(1_700_000_000) }, v)).toBe("not-modified");
    expect(evaluatePreconditions({ ...none, ifModifiedSince: at(1_699_999_999) }, v)).toBe("proceed");
    expect(evaluatePreconditions({ ...none, ifModifiedSince: "yesterday" }, v)).toBe("proceed");
    expect(evaluatePreconditions({ ...none, ifMatch: v.etag, ifNoneMatch: v.etag }, v)).toBe("not-modified");
    expect(evaluatePreconditions({ ...none, ifMatch: `W/${v.etag}` }, v)).toBe("failed");
    expect(evaluatePreconditions({ ...none, ifMatch: "*" }, v)).toBe("proceed");
    expect(evaluatePreconditions({ ...none, ifUnmodifiedSince: at(1_600_000_000) }, v)).toBe("failed");
    expect(evaluatePreconditions({ ...none, ifUnmodifiedSince: at(1_700_000_000) }, v)).toBe("proceed");
  });

  it("lets If-Range through only on a strong ETag match or the exact date", () => {
    expect(rangeAllowed(undefined, v)).toBe(true);
    expect(rangeAllowed(v.etag, v)).toBe(true);
    expect(rangeAllowed(`W/${v.etag}`, v)).toBe(false);
    expect(rangeAllowed('"other"', v)).toBe(false);
    expect(rangeAllowed(at(1_700_000_000), v)).toBe(true);
    expect(rangeAllowed(at(1_700_000_001), v)).toBe(false);
    expect(rangeAllowed("garbage", v)).toBe(false);
  });
});

describe("attachment", () => {
  it("quotes plain ASCII names as they are", () => {
    expect(attachment("report-2024.csv")).toBe('attachment; filename="report-2024.csv"');
  });

  it("adds an RFC 8187 filename* for anything a quoted string cannot carry", () => {
    expect(attachment("naïve.txt")).toBe(`attachment; filename="na_ve.txt"; filename*=UTF-8''na%C3%AFve.txt`);
    expect(attachment('a"b\\c.txt')).toBe(`attachment; filename="a_b_c.txt"; filename*=UTF-8''a%22b%5Cc.txt`);
    expect(attachment("日本.txt")).toBe(`attachment; filename="__.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt`);
    expect(attachment("é it's (1)*.txt")).toBe(`attachment; filename="_ it's (1)*.txt"; filename*=UTF-8''%C3%A9%20it%27s%20%281%29%2A.txt`);
  });
});

describe("contentTypeFor", () => {
  it("knows common extensions, case-insensitively, and defaults to octet-stream", () => {
    expect(contentTypeFor("/a/b.PNG")).toBe("image/png");
    expect(contentTypeFor("x.json")).toBe("application/json; charset=utf-8");
    expect(contentTypeFor("archive.tar.gz")).toBe("application/gzip");
    expect(contentTypeFor("Makefile")).toBe("application/octet-stream");
    expect(contentTypeFor(".bashrc")).toBe("application/octet-stream");
    expect(contentTypeFor("data.unknownext")).toBe("application/octet-stream");
  });
});
