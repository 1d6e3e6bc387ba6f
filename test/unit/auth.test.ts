import { describe, expect, it } from "vitest";
import { AuthError, Secret, signature, signaturePath, userNameFromHeaders, verifySignedUrl } from "../../src/auth.js";

const WEEK = 7 * 24 * 3600;

describe("signed URLs", () => {
  // Vectors from docs/wire-contract.md, computed by the SDK's own algorithm.
  it.each([
    ["/home/user/a.txt", "write", "root", "v1_zd4ogVtRAZumKMK/li4x0kMJG28VzdE5VncxS6QvYzY"],
    ["/", "write", "root", "v1_VVkdNgHpD1Ox368DHzFKDrsHAd2fcKbpiCL8ntTvFVw"],
    ["/home//user/a b.txt", "read", "user", "v1_ukGmMtFfiagg5G0GkxezQAgGQx1loaOVGvvVv7apt1I"],
  ] as const)("matches the SDK for %s:%s:%s", (path, op, user, expected) => {
    expect(signature(path, op, user, "envd-test-token")).toBe(expected);
  });

  it("normalises only the leading slashes of the signed path", () => {
    expect(signaturePath(undefined)).toBe("/");
    expect(signaturePath("")).toBe("/");
    expect(signaturePath("home/a")).toBe("/home/a");
    expect(signaturePath("///home//a")).toBe("/home//a");
  });

  const token = "envd-test-token";
  const now = 1_800_000_000;

  it("accepts a valid signature with and without expiration and returns its user", () => {
    const plain = signature("/a", "read", "user", token);
    expect(verifySignedUrl({ signature: plain, expiration: undefined, username: "user" }, "/a", "read", token, "root", WEEK, {}, now)).toBe("user");
    const exp = now + 60;
    const timed = signature("/a", "read", "root", token, exp);
    expect(verifySignedUrl({ signature: timed, expiration: String(exp), username: undefined }, "a", "read", token, "root", WEEK, {}, now)).toBe("root");
  });

  it("refuses expired, tampered, wrong-operation and malformed signatures", () => {
    const exp = now - 1;
    const expired = signature("/a", "read", "root", token, exp);
    const refuse = (sig: string, expiration: string | undefined, path: string, op: "read" | "write", user?: string): void => {
      expect(() => verifySignedUrl({ signature: sig, expiration, username: user }, path, op, token, "root", WEEK, {}, now)).toThrow(AuthError);
    };
    refuse(expired, String(exp), "/a", "read");
    const good = signature("/a", "read", "root", token);
    refuse(good, undefined, "/b", "read");
    refuse(good, undefined, "/a", "write");
    refuse(good, undefined, "/a", "read", "user");
    refuse(good.slice(0, -1), undefined, "/a", "read");
    refuse(good, "not-a-number", "/a", "read");
    const future = signature("/a", "read", "root", token, now + 60);
    refuse(future, String(now + 61), "/a", "read");
  });
});

describe("access token", () => {
  it("compares exactly", () => {
    const secret = new Secret("secret");
    expect(secret.matches("secret")).toBe(true);
    expect(secret.matches("secreT")).toBe(false);
    expect(secret.matches("secret-longer")).toBe(false);
    expect(secret.matches("")).toBe(false);
  });
});

describe("caller user from headers", () => {
  const from = (headers: Record<string, string>): string => userNameFromHeaders((name) => headers[name], "root");
  it("reads X-User, Bearer and Basic, in that order of precedence", () => {
    expect(from({})).toBe("root");
    expect(from({ authorization: "Bearer user" })).toBe("user");
    expect(from({ authorization: `Basic ${Buffer.from("alice:").toString("base64")}` })).toBe("alice");
    expect(from({ authorization: `basic ${Buffer.from("bob:pw").toString("base64")}` })).toBe("bob");
    expect(from({ authorization: "Bearer root", "x-user": "carol" })).toBe("carol");
    expect(from({ authorization: "Bearer " })).toBe("root");
    expect(from({ authorization: "Digest xyz" })).toBe("root");
  });
});
