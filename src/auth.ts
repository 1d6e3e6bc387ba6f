/**
 * Who may call, and as whom. The access token is compared in constant time; signed URLs use the
 * SDKs' algorithm: "v1_" + unpadded base64 of sha256("<path>:<op>:<user>:<token>[:<expiration>]").
 * Refusals never say anything about the token itself.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { lookupUser, type User } from "./users.js";

export type Operation = "read" | "write";

export class AuthError extends Error {}

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

/** Constant-time equality that also hides the length of the secret. */
export function secretEquals(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * A secret checked on every request: its digest is taken once, so a check hashes only what the
 * caller presented (one hash instead of two on the path of every call).
 */
export class Secret {
  private readonly digest: Buffer;

  constructor(readonly value: string) {
    this.digest = digest(value);
  }

  /** Constant time, and hides the secret's length. */
  matches(given: string): boolean {
    return timingSafeEqual(digest(given), this.digest);
  }
}

/** The path as the SDKs sign it: one leading slash, nothing else normalised; `/` when absent. */
export function signaturePath(path: string | undefined): string {
  return path ? `/${path.replace(/^\/+/, "")}` : "/";
}

export function signature(path: string, op: Operation, user: string, token: string, expiration?: number): string {
  const raw = expiration === undefined ? `${path}:${op}:${user}:${token}` : `${path}:${op}:${user}:${token}:${expiration}`;
  return `v1_${digest(raw).toString("base64").replace(/=+$/, "")}`;
}

export interface SignedParams {
  readonly signature: string;
  readonly expiration: string | undefined;
  readonly username: string | undefined;
}

/**
 * Verifies a signed URL. Throws AuthError when the signature is malformed, wrong or expired;
 * returns the user name the URL was signed for.
 */
export function verifySignedUrl(
  params: SignedParams,
  path: string | undefined,
  op: Operation,
  token: string,
  defaultUser: string,
  maxLifetimeSeconds: number,
  dialect: { readonly raw?: boolean } = {},
  nowSeconds = Math.floor(Date.now() / 1000),
): string {
  const user = params.username ?? defaultUser;
  // envd signs the raw query values, "" for an absent path or user; the user acted as is the default.
  const signedUser = dialect.raw === true ? (params.username ?? "") : user;
  const signedPath = dialect.raw === true ? (path ?? "") : signaturePath(path);
  let expiration: number | undefined;
  if (params.expiration !== undefined) {
    if (!/^\d{1,12}$/.test(params.expiration)) throw new AuthError("invalid signature expiration");
    expiration = Number(params.expiration);
    if (expiration < nowSeconds) throw new AuthError("signature is already expired");
    // A URL that works for years is a token by another name: its lifetime is bounded.
    if (expiration > nowSeconds + maxLifetimeSeconds) {
      throw new AuthError(`signature_expiration lies more than ${maxLifetimeSeconds} s ahead (the agent's --signed-url-max-seconds)`);
    }
  }
  const expected = signature(signedPath, op, signedUser, token, expiration);
  if (!secretEquals(params.signature, expected)) throw new AuthError("invalid signature");
  return user;
}

type HeaderValue = string | string[] | undefined;
const first = (value: HeaderValue): string | undefined => (Array.isArray(value) ? value[0] : value);

/**
 * The caller's user name from the request headers: `X-User`, else `Authorization: Bearer <user>`,
 * else `Authorization: Basic base64(<user>:)`, else the default.
 */
export function userNameFromHeaders(get: (name: string) => HeaderValue, defaultUser: string): string {
  const explicit = first(get("x-user"))?.trim();
  if (explicit) return explicit;
  const authorization = first(get("authorization"))?.trim();
  if (authorization) {
    const space = authorization.indexOf(" ");
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
    const credentials = space < 0 ? "" : authorization.slice(space + 1).trim();
    if (scheme === "bearer" && credentials !== "") return credentials;
    if (scheme === "basic" && credentials !== "") {
      const decoded = Buffer.from(credentials, "base64").toString("utf8");
      const name = decoded.split(":")[0] ?? "";
      if (name !== "") return name;
    }
  }
  return defaultUser;
}

export function resolveUser(name: string): User {
  const user = lookupUser(name);
  if (user === undefined) throw new AuthError(`unknown user ${JSON.stringify(name.slice(0, 64))}`);
  return user;
}
