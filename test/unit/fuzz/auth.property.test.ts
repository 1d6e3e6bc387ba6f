/**
 * Properties of the ways in: a signed URL verifies exactly when it was made for this path,
 * operation, user, token and expiration, and any single change to one of them is refused with
 * AuthError (never another error, whatever the parameters hold); the header parsers never throw,
 * and the access token matches only itself.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AuthError,
  resolveUser,
  Secret,
  signature,
  signaturePath,
  userNameFromHeaders,
  verifySignedUrl,
  type Operation,
  type SignedParams,
} from "../../../src/auth.js";

const RUNS = 1_000;
const NOW = 1_800_000_000;

/**
 * Strings as HTTP can deliver them. No lone surrogates: header values and decoded URLs are made
 * from bytes and cannot hold one (UTF-8 hashing would map them all to U+FFFD).
 */
const text = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 30 }),
  fc.constantFrom("", "/", "//", ":", "a:b", "\0", "root", "~", "~/x", " "),
);
const paths = fc.option(text, { nil: undefined });
const ops = fc.constantFrom<Operation>("read", "write");
const users = fc.oneof(
  fc.constantFrom("root", "user", "nobody"),
  text.filter((s) => s !== ""),
);
const tokens = fc.oneof(fc.constant("envd-test-token"), fc.string({ minLength: 1, maxLength: 40 }));
const futureExpirations = fc.option(fc.integer({ min: NOW, max: 999_999_999_999 }), { nil: undefined });

/** The user name the verifier returns, or the AuthError it threw; anything else fails the property. */
function verify(params: SignedParams, path: string | undefined, op: Operation, token: string): string | AuthError {
  try {
    // Binding is what these properties judge; the lifetime bound has its own property below.
    return verifySignedUrl(params, path, op, token, "root", Number.MAX_SAFE_INTEGER, {}, NOW);
  } catch (err) {
    if (err instanceof AuthError) return err;
    throw err;
  }
}

interface Signed {
  readonly path: string | undefined;
  readonly op: Operation;
  readonly user: string;
  readonly token: string;
  readonly expiration: number | undefined;
}

const signedUrls = fc.record({ path: paths, op: ops, user: users, token: tokens, expiration: futureExpirations });

const paramsOf = (s: Signed, sig = signature(signaturePath(s.path), s.op, s.user, s.token, s.expiration)): SignedParams => ({
  signature: sig,
  expiration: s.expiration === undefined ? undefined : String(s.expiration),
  username: s.user,
});

describe("signed URLs", () => {
  it("verify for what they were made for, and return that user", () => {
    fc.assert(
      fc.property(signedUrls, (s) => {
        expect(verify(paramsOf(s), s.path, s.op, s.token)).toBe(s.user);
      }),
      { numRuns: RUNS },
    );
  });

  it("refuse an expiration further ahead than the bound, and accept one within it", () => {
    const bound = 7 * 24 * 3600;
    fc.assert(
      fc.property(signedUrls, fc.integer({ min: 0, max: 2 * bound }), (s, ahead) => {
        const expiration = NOW + ahead;
        const signed = { ...s, expiration };
        const outcome = (() => {
          try {
            return verifySignedUrl(paramsOf(signed), s.path, s.op, s.token, "root", bound, {}, NOW);
          } catch (err) {
            if (err instanceof AuthError) return err;
            throw err;
          }
        })();
        if (ahead > bound) expect(outcome).toBeInstanceOf(AuthError);
        else expect(outcome).toBe(s.user);
      }),
      { numRuns: RUNS },
    );
  });

  it("treat the default user and a missing leading slash as the SDK does", () => {
    fc.assert(
      fc.property(signedUrls, (s) => {
        const asRoot = { ...s, user: "root" };
        expect(verify({ ...paramsOf(asRoot), username: undefined }, s.path, s.op, s.token)).toBe("root");
        if (s.path !== undefined) expect(verify(paramsOf(s), `///${s.path}`, s.op, s.token)).toBe(s.user);
      }),
      { numRuns: RUNS },
    );
  });

  it("refuse any single change of signature, path, operation, user, token or expiration with AuthError", () => {
    const change = fc.constantFrom("signature", "path", "op", "user", "token", "expiration", "expired", "drop-expiration");
    fc.assert(
      fc.property(signedUrls, change, text, fc.nat(), (s, what, other, at) => {
        const params = paramsOf(s);
        let result: string | AuthError;
        switch (what) {
          case "signature": {
            const sig = params.signature;
            const i = at % sig.length;
            const changed = other !== sig && other !== "" ? other : `${sig.slice(0, i)}${sig[i] === "A" ? "B" : "A"}${sig.slice(i + 1)}`;
            result = verify({ ...params, signature: changed }, s.path, s.op, s.token);
            break;
          }
          case "path": {
            fc.pre(signaturePath(other) !== signaturePath(s.path));
            result = verify(params, other, s.op, s.token);
            break;
          }
          case "op":
            result = verify(params, s.path, s.op === "read" ? "write" : "read", s.token);
            break;
          case "user": {
            const user = other === "" ? undefined : other;
            fc.pre((user ?? "root") !== s.user);
            result = verify({ ...params, username: user }, s.path, s.op, s.token);
            break;
          }
          case "token":
            fc.pre(other !== s.token);
            result = verify(params, s.path, s.op, other);
            break;
          case "expiration": {
            const moved = (s.expiration ?? NOW) + 1 + (at % 1000);
            result = verify({ ...params, expiration: String(moved) }, s.path, s.op, s.token);
            break;
          }
          case "expired": {
            const past = NOW - 1 - (at % 100_000);
            const stale = { ...s, expiration: past };
            result = verify(paramsOf(stale), s.path, s.op, s.token);
            break;
          }
          default:
            fc.pre(s.expiration !== undefined);
            result = verify({ ...params, expiration: undefined }, s.path, s.op, s.token);
        }
        expect(result).toBeInstanceOf(AuthError);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it("answer any parameters with a user or an AuthError, and a user only for the right signature", () => {
    const expiration = fc.option(fc.oneof(text, fc.constantFrom("-1", "NaN", "1e10", "0", "18446744073709551616", "9".repeat(13), " 1", "Infinity")), {
      nil: undefined,
    });
    fc.assert(
      fc.property(text, expiration, fc.option(text, { nil: undefined }), paths, ops, tokens, (sig, exp, username, path, op, token) => {
        const result = verify({ signature: sig, expiration: exp, username }, path, op, token);
        if (typeof result === "string") expect(result).toBe(username ?? "root");
      }),
      { numRuns: RUNS * 3 },
    );
  });
});

describe("access token and caller headers", () => {
  const headerValue = fc.oneof(fc.constant(undefined), text, fc.array(text, { maxLength: 3 }));

  it("a Secret matches the token and nothing else, and never throws", () => {
    fc.assert(
      fc.property(text, tokens, (header, token) => {
        const secret = new Secret(token);
        expect(secret.matches(header)).toBe(header === token);
        expect(secret.matches(token)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it("userNameFromHeaders never throws and names someone: X-User first, then Bearer, then Basic, else the default", () => {
    const authorization = fc.oneof(
      text,
      text.map((s) => `Bearer ${s}`),
      text.map((s) => `Basic ${s}`),
      text.map((s) => `Basic ${Buffer.from(s, "utf8").toString("base64")}`),
      fc.array(text, { maxLength: 2 }),
    );
    fc.assert(
      fc.property(headerValue, fc.option(authorization, { nil: undefined }), (xUser, auth) => {
        const headers: Record<string, string | string[] | undefined> = { "x-user": xUser, authorization: auth };
        const name = userNameFromHeaders((n) => headers[n], "root");
        expect(typeof name).toBe("string");
        expect(name).not.toBe("");
        const explicit = (Array.isArray(xUser) ? xUser[0] : xUser)?.trim();
        if (explicit) expect(name).toBe(explicit);
        else if (auth === undefined) expect(name).toBe("root");
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it("resolveUser refuses unknown names with AuthError only", () => {
    fc.assert(
      fc.property(text, (name) => {
        try {
          expect(resolveUser(name).name).toBe(name);
        } catch (err) {
          expect(err).toBeInstanceOf(AuthError);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
