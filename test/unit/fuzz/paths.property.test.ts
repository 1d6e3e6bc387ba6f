/**
 * Properties of path resolution, the one gate every path a caller sends goes through: it refuses
 * only with PathError, and what it returns is absolute, normalised, free of NUL bytes and short
 * enough to open; `..` stops at `/`, and `~` means the caller's own home and nothing else.
 */
import fc from "fast-check";
import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { PathError, resolvePath } from "../../../src/paths.js";
import type { User } from "../../../src/users.js";

const RUNS = 3_000;
const PATH_MAX = 4096;

const segment = fc.oneof(
  { arbitrary: fc.constantFrom("..", ".", "", "~", "~root", "a", "dir", "...", " ", "\\", "%2e%2e", "a\0b", "\0"), weight: 4 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 8 }), weight: 3 },
  // Lone surrogates: a JS string can hold them, UTF-8 cannot.
  { arbitrary: fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 3 }), weight: 1 },
  { arbitrary: fc.integer({ min: 250, max: 1500 }).map((n) => "n".repeat(n)), weight: 1 },
);

const paths = fc.oneof(
  {
    arbitrary: fc
      .tuple(fc.constantFrom("", "/", "//", "~", "~/", "./", "../"), fc.array(segment, { maxLength: 12 }), fc.constantFrom("", "/", "//"))
      .map(([head, segs, tail]) => head + segs.join("/") + tail),
    weight: 8,
  },
  { arbitrary: fc.string({ unit: "binary", maxLength: 40 }), weight: 2 },
  { arbitrary: fc.integer({ min: 1, max: 60 }).map((n) => `${"../".repeat(n)}etc`), weight: 1 },
  { arbitrary: fc.integer({ min: 1000, max: 1500 }).map((n) => "/ab".repeat(n)), weight: 1 },
);

const homes = fc.oneof(
  fc.constantFrom("/", "/root", "/home/user", "/nonexistent", "/home/ünï"),
  fc.array(fc.constantFrom("a", "b", "c d", "é"), { minLength: 1, maxLength: 4 }).map((s) => `/${s.join("/")}`),
);
const users = homes.map((home): User => ({ name: "u", uid: 1000, gid: 1000, home, shell: "/bin/sh", groups: [1000] }));

/** The result, or the PathError it threw; anything else thrown fails the property. */
function attempt(path: string, user: User): string | PathError {
  try {
    return resolvePath(path, user);
  } catch (err) {
    if (err instanceof PathError) return err;
    throw err;
  }
}

describe("resolvePath", () => {
  it("throws nothing but PathError, and returns an absolute, normalised, openable path", () => {
    fc.assert(
      fc.property(paths, users, (path, user) => {
        const result = attempt(path, user);
        if (result instanceof PathError) return;
        expect(result.startsWith("/")).toBe(true);
        expect(posix.normalize(result)).toBe(result);
        expect(result === "/" || !result.endsWith("/")).toBe(true);
        expect(
          result
            .split("/")
            .slice(1)
            .every((s) => s !== "." && s !== ".." && (s !== "" || result === "/")),
        ).toBe(true);
        expect(result.includes("\0")).toBe(false);
        expect(Buffer.byteLength(result)).toBeLessThan(PATH_MAX);
      }),
      { numRuns: RUNS },
    );
  });

  it("resolves absolute paths on their own and relative ones against the home, `..` stopping at /", () => {
    fc.assert(
      fc.property(
        paths.filter((p) => !p.startsWith("~") && !p.includes("\0")),
        users,
        (path, user) => {
          const result = attempt(path, user);
          const expected = path === "" ? user.home : posix.resolve(user.home, path);
          if (Buffer.byteLength(expected) >= PATH_MAX) expect(result).toBeInstanceOf(PathError);
          else expect(result).toBe(expected);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("expands ~ and ~/ to the caller's home only, and refuses ~name", () => {
    fc.assert(
      fc.property(
        paths.filter((p) => !p.includes("\0")),
        users,
        (rest, user) => {
          const inHome = attempt(`~/${rest}`, user);
          if (!(inHome instanceof PathError)) {
            // `..` may climb out of the home, as it would in a shell; it cannot climb out of /.
            expect(inHome).toBe(posix.resolve(user.home, rest.replace(/^\/+/, "")));
          }
          if (rest !== "" && !rest.startsWith("/")) expect(attempt(`~${rest}`, user)).toBeInstanceOf(PathError);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("refuses every path with a NUL byte", () => {
    fc.assert(
      fc.property(paths, fc.nat(), users, (path, at, user) => {
        const i = at % (path.length + 1);
        expect(attempt(`${path.slice(0, i)}\0${path.slice(i)}`, user)).toBeInstanceOf(PathError);
      }),
      { numRuns: RUNS },
    );
  });
});
