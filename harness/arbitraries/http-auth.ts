/**
 * Families "signed" and "auth": the two ways in. Signed URLs with missing, repeated, garbage and
 * off-by-one parameters (signature, signature_expiration, username); and headers — the access
 * token empty, huge, repeated or unicode, Authorization Basic/Bearer garbage, unknown, huge and
 * unicode X-User.
 *
 * A request that carries no valid credential says so (`UNAUTHORISED`), so that a property can
 * check it was refused.
 */
import fc from "fast-check";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import {
  accessHeaders,
  BOUNDARY,
  encodedScratch,
  FIXTURES,
  formContentType,
  forTransport,
  queryValue,
  signUrl,
  simpleForm,
  smallContent,
  transports,
  UNAUTHORISED,
  type Header,
} from "./http-common.js";

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

type Op = "read" | "write";

/** What a signed request signs and asks for. */
interface SignedTarget {
  readonly op: Op;
  /** The path as the agent hands it to the verifier (decoded, before the leading-slash rule). */
  readonly signedPath: string | undefined;
  readonly spec: (query: string) => Omit<RequestSpec, "family" | "transport">;
}

function signedTargets(ctx: FuzzContext): fc.Arbitrary<SignedTarget> {
  const scratchRel = ctx.scratch.replace(/^\/+/, "");
  const download = fc.constantFrom(FIXTURES.file, FIXTURES.empty, FIXTURES.dir, "missing.bin").map(
    (name): SignedTarget => ({
      op: "read",
      signedPath: `${scratchRel}/${name}`,
      spec: (query) => ({ method: "GET", target: `/download/${encodedScratch(ctx)}/${name}?${query}`, headers: [] }),
    }),
  );
  const upload = fc
    .tuple(fc.constantFrom<string | undefined>(`${FIXTURES.uploads}/signed.bin`, FIXTURES.uploads, undefined), smallContent)
    .map(([rest, content]): SignedTarget => {
      const path = rest === undefined ? undefined : `${ctx.scratch}/${rest}`;
      // With no query path the file name is the target: a safe absolute one.
      const body = simpleForm(BOUNDARY, `${ctx.scratch}/${FIXTURES.uploads}/by-name.bin`, content);
      return {
        op: "write",
        signedPath: path,
        spec: (query) => ({
          method: "POST",
          target: `/upload?${path === undefined ? "" : `path=${queryValue(path)}&`}${query}`,
          headers: [["content-type", formContentType]],
          body: [body],
        }),
      };
    });
  return fc.oneof(download, upload);
}

const usernames = fc.constantFrom<string | undefined>(undefined, undefined, "root", "nobody", "", "рут", "no-such-user", "u".repeat(5000), "root\u0000");

/** Expirations around `now` (fixed when the arbitrary is made, so that a seed replays the same values). */
const expirations = (now: number): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { arbitrary: fc.constant<string | undefined>(undefined), weight: 3 },
    // At least a day ahead: a slow run must not see them expire.
    { arbitrary: fc.integer({ min: 86_400, max: 10 ** 8 }).map((d) => String(now + d)), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 10 ** 6 }).map((d) => String(now - d)), weight: 1 },
    {
      arbitrary: fc.constantFrom("-1", "NaN", "", "1e10", "18446744073709551616", "0", "9".repeat(13), "999999999999", " 1", "0x7fffffff", "Infinity"),
      weight: 2,
    },
  );

type Mutation =
  | "none"
  | "flip"
  | "truncate"
  | "no-prefix"
  | "hex"
  | "empty"
  | "huge"
  | "other-op"
  | "other-path"
  | "other-user"
  | "other-expiration"
  | "plus-raw";

const mutations = fc.oneof(
  { arbitrary: fc.constant<Mutation>("none"), weight: 4 },
  {
    arbitrary: fc.constantFrom<Mutation>(
      "flip",
      "truncate",
      "no-prefix",
      "hex",
      "empty",
      "huge",
      "other-op",
      "other-path",
      "other-user",
      "other-expiration",
      "plus-raw",
    ),
    weight: 5,
  },
);

function flipChar(text: string, at: number): string {
  const i = 3 + (at % Math.max(1, text.length - 3));
  const c = text[i] ?? "A";
  return `${text.slice(0, i)}${c === "A" ? "B" : "A"}${text.slice(i + 1)}`;
}

function mutate(mutation: Mutation, sig: () => string, other: (change: "op" | "path" | "user" | "expiration") => string, at: number): string {
  switch (mutation) {
    case "none":
    case "plus-raw":
      return sig();
    case "flip":
      return flipChar(sig(), at);
    case "truncate":
      return sig().slice(0, -1 - (at % 5));
    case "no-prefix":
      return sig().slice(3);
    case "hex":
      return `v1_${"0123456789abcdef".repeat(4)}`;
    case "empty":
      return "";
    case "huge":
      return `v1_${"A".repeat(20_000)}`;
    case "other-op":
      return other("op");
    case "other-path":
      return other("path");
    case "other-user":
      return other("user");
    case "other-expiration":
      return other("expiration");
  }
}

export function signedRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  const now = nowSeconds();
  return fc
    .record({
      transport: transports,
      target: signedTargets(ctx),
      username: usernames,
      expiration: expirations(now),
      mutation: mutations,
      at: fc.nat(),
      repeat: fc.constantFrom("none", "none", "none", "signature-first", "signature-last", "username", "expiration"),
      withToken: fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 }),
    })
    .map(({ transport, target, username, expiration, mutation, at, repeat, withToken }) => {
      const user = username ?? "root";
      const sign = (path = target.signedPath, op: Op = target.op, u = user, exp = expiration): string => signUrl(path, op, u, ctx.token, exp);
      const other = (change: "op" | "path" | "user" | "expiration"): string => {
        if (change === "op") return sign(target.signedPath, target.op === "read" ? "write" : "read");
        if (change === "path") return sign(`${target.signedPath ?? ""}x`);
        if (change === "user") return sign(target.signedPath, target.op, user === "root" ? "nobody" : "root");
        return sign(target.signedPath, target.op, user, String(Number(expiration ?? now) + 1));
      };
      const signatureValue = mutate(mutation, () => sign(), other, at);
      const encodedSignature = mutation === "plus-raw" ? signatureValue : encodeURIComponent(signatureValue);
      const params: string[] = [`signature=${encodedSignature}`];
      if (repeat === "signature-first") params.unshift("signature=v1_garbage");
      if (repeat === "signature-last") params.push("signature=v1_garbage");
      // A repeated parameter comes after the first one, which is the one that counts.
      if (expiration !== undefined) {
        params.push(`signature_expiration=${encodeURIComponent(expiration)}`);
        if (repeat === "expiration") params.push(`signature_expiration=${now + 86_400}`);
      }
      if (username !== undefined) {
        params.push(`username=${encodeURIComponent(username)}`);
        if (repeat === "username") params.push("username=nobody");
      }
      const base = target.spec(params.join("&"));
      const tampered = mutation !== "none" && !(mutation === "plus-raw" && !signatureValue.includes("+"));
      const refused = !withToken && tampered;
      const headers: Header[] = [...base.headers, ...(withToken ? [["x-access-token", ctx.token] as const] : []), ...(refused ? [UNAUTHORISED] : [])];
      return forTransport({ family: "signed", transport, ...base, headers });
    });
}

// --- auth headers ---------------------------------------------------------------------------------

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

/** Header values the raw writer can put on one line (latin1; no CR or LF). */
const oneLine = (s: string): string => s.replace(/[\r\n]/g, " ");

function tokenHeaders(ctx: FuzzContext): fc.Arbitrary<Header[]> {
  return fc.oneof(
    { arbitrary: accessHeaders(ctx), weight: 4 },
    {
      arbitrary: fc.constantFrom<Header[]>(
        [["x-access-token", ""]],
        [["x-access-token", "t".repeat(20_000)]],
        [
          ["x-access-token", ctx.token],
          ["x-access-token", "garbage"],
        ],
        [
          ["x-access-token", "garbage"],
          ["x-access-token", ctx.token],
        ],
        [
          ["x-access-token", ctx.token],
          ["x-access-token", ctx.token],
        ],
        [["x-access-token", `${ctx.token}\u00e9`]],
        [["x-access-token", `\u00a0${ctx.token}`]],
        [["x-access-token", ` ${ctx.token}\t`]], // surrounding spaces and tabs are not part of a value
        [["X-ACCESS-TOKEN", ctx.token]],
        [["x-access-token ", ctx.token]],
      ),
      weight: 2,
    },
  );
}

const authorization = fc.oneof(
  { arbitrary: fc.constant<string | undefined>(undefined), weight: 3 },
  {
    arbitrary: fc.constantFrom(
      "Bearer root",
      "Bearer ",
      "Bearer",
      "bearer root",
      "Bearer \u00fcser",
      "Bearer nobody",
      `Bearer ${"u".repeat(9000)}`,
      "Bearer root, Bearer other",
      `Basic ${b64("root:")}`,
      `Basic ${b64("root:password")}`,
      "Basic !!!",
      `Basic ${b64("nocolon")}`,
      `Basic ${b64(":")}`,
      `Basic ${b64(":root")}`,
      `Basic ${b64(`${"x".repeat(6000)}:`)}`,
      "Basic",
      "Basic ",
      "basic cm9vdDo=",
      "Basic cm9vdDo",
      "Basic ====",
      "Digest username=root",
      "  ",
      "\t",
    ),
    weight: 4,
  },
  { arbitrary: fc.string({ maxLength: 40 }).map(oneLine), weight: 1 },
);

const xUser = fc.oneof(
  { arbitrary: fc.constant<string | undefined>(undefined), weight: 4 },
  { arbitrary: fc.constantFrom("root", "nobody", "no-such-user", "", " ", " root ", "\u00fcser", "u".repeat(9000), "root\u0000x", "../root", "0"), weight: 3 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 20 }).map(oneLine), weight: 1 },
);

interface AuthTarget {
  readonly method: string;
  readonly target: string;
  readonly headers: readonly Header[];
  readonly body?: readonly Uint8Array[];
  /** Open to anyone (/health): no refusal to expect. */
  readonly public?: boolean;
}

function authTargets(ctx: FuzzContext): fc.Arbitrary<AuthTarget> {
  const statBody = Buffer.from(JSON.stringify({ path: ctx.scratch }));
  const download = `/download/${encodedScratch(ctx)}/${FIXTURES.file}`;
  return fc.oneof(
    fc.constantFrom<AuthTarget>(
      { method: "GET", target: download, headers: [] },
      { method: "HEAD", target: download, headers: [] },
      { method: "GET", target: "/metrics", headers: [] },
      { method: "GET", target: "/no/such/route", headers: [] },
      { method: "GET", target: "/health", headers: [], public: true },
      {
        method: "POST",
        target: "/sandboxagent.Filesystem/Stat",
        headers: [
          ["content-type", "application/json"],
          ["connect-protocol-version", "1"],
        ],
        body: [statBody],
      },
    ),
    smallContent.map(
      (content): AuthTarget => ({
        method: "POST",
        target: `/upload?path=${queryValue(`${ctx.scratch}/${FIXTURES.uploads}/auth.bin`)}`,
        headers: [["content-type", formContentType]],
        body: [simpleForm(BOUNDARY, "auth.bin", content)],
      }),
    ),
  );
}

export function authRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc
    .record({ transport: transports, target: authTargets(ctx), token: tokenHeaders(ctx), authorization, xUser })
    .map(({ transport, target, token, authorization, xUser }) => {
      const { public: isPublic, ...request } = target;
      const headers: Header[] = [...request.headers, ...token];
      if (authorization !== undefined) headers.push(["authorization", authorization]);
      if (xUser !== undefined) headers.push(["x-user", xUser]);
      // No header carries the token itself: whatever else is sent, this must be refused.
      // (Servers strip a value's surrounding spaces and tabs, so `token ` is the token.)
      const noToken = !token.some(([name, value]) => name.trim().toLowerCase() === "x-access-token" && value.replace(/^[ \t]+|[ \t]+$/g, "") === ctx.token);
      if (noToken && !isPublic) headers.push(UNAUTHORISED);
      return forTransport({ family: "auth", transport, ...request, headers });
    });
}
