/**
 * Properties of the smaller parsers and builders between a request and the disk: the
 * Content-Disposition built from any file name is a valid header that carries the name exactly;
 * content types and conditional headers never throw; the protocol sniffer never changes its mind;
 * and upload placement, for any form, only ever says an absolute path, keeping signed uploads
 * inside what was signed.
 */
import fc from "fast-check";
import { validateHeaderValue } from "node:http";
import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { evaluatePreconditions, rangeAllowed, validatorsOf, type Conditions } from "../../../src/http/conditional.js";
import { attachment } from "../../../src/http/disposition.js";
import { contentTypeFor } from "../../../src/http/mime.js";
import { HttpError } from "../../../src/http/reply-error.js";
import { checkSignedScope, placeFiles, type Placement, type Probe } from "../../../src/http/upload-target.js";
import { sniff } from "../../../src/net/one-port.js";
import type { User } from "../../../src/users.js";

const RUNS = 2_000;

/** File names as a percent-decoded URL gives them: any well-formed string. */
const names = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 30 }),
  fc.constantFrom('a"b', "a\\b", "a;b", "a\r\nSet-Cookie: x=y", "%41", "'", "ü.txt", "😀", "\u007f", "a b"),
);

/** Undoes RFC 8187 ext-value encoding: `UTF-8''%XX…`. */
const decodeExtValue = (value: string): string => decodeURIComponent(value.replace(/^UTF-8''/, ""));

describe("Content-Disposition", () => {
  it("is a valid header value for any name and carries the name exactly", () => {
    fc.assert(
      fc.property(names, (name) => {
        const header = attachment(name);
        expect(() => validateHeaderValue("content-disposition", header)).not.toThrow();
        expect(header).toMatch(/^[\x20-\x7e]*$/);
        const plain = /^attachment; filename="([^"\\]*)"$/.exec(header);
        if (plain) {
          expect(plain[1]).toBe(name);
          return;
        }
        const both = /^attachment; filename="([^"\\]*)"; filename\*=(UTF-8''[A-Za-z0-9!#$&+\-.^_`|~%]*)$/.exec(header);
        expect(both, header).not.toBeNull();
        expect(decodeExtValue(both![2]!)).toBe(name);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("content types and conditional requests", () => {
  it("contentTypeFor gives a valid header value for any path", () => {
    fc.assert(
      fc.property(names, (name) => {
        expect(() => validateHeaderValue("content-type", contentTypeFor(`/x/${name}`))).not.toThrow();
      }),
      { numRuns: RUNS },
    );
  });

  const header = fc.option(
    fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom("*", '"x"', 'W/"x"', "W/", '"', 'W/"', '"a", W/"b"', "Sun, 06 Nov 1994 08:49:37 GMT", "garbage", ""),
      fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()),
    ),
    { nil: undefined },
  );
  const conditions = fc.record<Conditions>({ ifMatch: header, ifNoneMatch: header, ifModifiedSince: header, ifUnmodifiedSince: header, ifRange: header });
  const stats = fc.record({
    ino: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    size: fc.bigInt({ min: 0n, max: 2n ** 63n }),
    mtimeNs: fc.bigInt({ min: 0n, max: 2n ** 63n }),
  });

  it("preconditions and If-Range decide without throwing, for any headers and file", () => {
    fc.assert(
      fc.property(conditions, stats, (c, st) => {
        const v = validatorsOf(st as unknown as import("node:fs").BigIntStats);
        expect(["proceed", "not-modified", "failed"]).toContain(evaluatePreconditions(c, v));
        expect(typeof rangeAllowed(c.ifRange, v)).toBe("boolean");
        // The file's own validators always pass.
        expect(
          evaluatePreconditions(
            { ifMatch: v.etag, ifNoneMatch: undefined, ifModifiedSince: undefined, ifUnmodifiedSince: v.lastModified, ifRange: undefined },
            v,
          ),
        ).toBe("proceed");
        expect(rangeAllowed(v.etag, v)).toBe(true);
        expect(rangeAllowed(v.lastModified, v)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("protocol sniffing", () => {
  it("never changes its verdict once it has one, however the bytes arrive", () => {
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    const streams = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.nat(preface.length), fc.uint8Array({ maxLength: 8 })).map(([n, tail]) => Buffer.concat([preface.subarray(0, n), tail])),
    );
    fc.assert(
      fc.property(streams, (bytes) => {
        let decided: string | undefined;
        for (let n = 0; n <= bytes.length; n++) {
          const kind = sniff(bytes.subarray(0, n));
          if (decided !== undefined) expect(kind).toBe(decided);
          else if (kind !== "undecided") decided = kind;
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe("upload placement", () => {
  const user: User = { name: "u", uid: 1000, gid: 1000, home: "/home/u", shell: "/bin/sh", groups: [1000] };
  const pathText = fc.oneof(
    fc.constantFrom("", "/", "/up", "/up/", "up", "~", "~/x", "~root/x", "..", "../..", "/up/../..", "/up/a\0b", "a/b", "/dir", "/dir/"),
    fc.string({ maxLength: 20 }),
    fc.integer({ min: 4000, max: 5000 }).map((n) => `/${"x".repeat(n)}`),
  );
  const probe: Probe = async (path) => (path === "/dir" || path === "/home/u" || path === "/" ? "directory" : path === "/file" ? "other" : "missing");

  it("places any form at absolute, normalised paths, or refuses it with HttpError", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(pathText, { maxLength: 3 }),
        fc.option(pathText, { nil: undefined }),
        fc.array(fc.option(pathText, { nil: undefined }), { maxLength: 4 }),
        async (pathFields, queryPath, fileNames) => {
          let placements: Placement[];
          try {
            placements = await placeFiles({ pathFields, queryPath, fileNames }, user, probe);
          } catch (err) {
            expect(err).toBeInstanceOf(HttpError);
            return;
          }
          expect(placements).toHaveLength(fileNames.length);
          for (const { target } of placements) {
            expect(target.startsWith("/")).toBe(true);
            expect(posix.normalize(target)).toBe(target);
            expect(target.includes("\0")).toBe(false);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("lets a signed upload write only the signed path or inside it", () => {
    fc.assert(
      fc.property(
        pathText,
        fc.array(
          pathText.map((p) => posix.resolve("/home/u", p.replace(/\0/g, ""))),
          { minLength: 1, maxLength: 3 },
        ),
        (signed, targets) => {
          const placements = targets.map((target) => ({ target, shown: target }));
          let allowed: string;
          try {
            allowed = posix.resolve("/home/u", signed.startsWith("~/") ? signed.slice(2) : signed === "~" ? "" : signed);
            checkSignedScope(placements, signed, user);
          } catch (err) {
            expect(err).toBeInstanceOf(HttpError);
            return;
          }
          for (const { target } of placements) expect(target === allowed || target.startsWith(allowed === "/" ? "/" : `${allowed}/`)).toBe(true);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
