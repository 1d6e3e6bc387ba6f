/**
 * Pieces shared by the plain-HTTP generators: the fixtures they aim at, credentials, path
 * segments in their many encodings, the safety check every upload target passes, and the
 * signed-URL algorithm (written out again here, from docs/wire-contract.md, so that a generator does not
 * trust the code it is testing).
 *
 * Safety: the agent runs as root. Every path an upload may write to is checked with
 * `uploadPathIsSafe` in each form a parser could read it (as sent, percent-decoded, ASCII-only
 * decoded) and must lie inside the scratch directory; relative names are only ever sent where a
 * safe directory is already named, so they cannot land in a home directory.
 */
import fc from "fast-check";
import { createHash } from "node:crypto";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { posix } from "node:path";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";

export type Header = readonly [string, string];

/**
 * What a request must get, for a property to check, in a header the agent ignores:
 * `unauthorised` (no valid credential: never a 2xx or 3xx), `served` (the file itself, a range
 * of it, a 416, or a 431 for headers too large to read).
 */
export const EXPECT_HEADER = "x-fuzz-expect";
export const UNAUTHORISED: Header = [EXPECT_HEADER, "unauthorised"];
export const SERVED: Header = [EXPECT_HEADER, "served"];
export type Transport = RequestSpec["transport"];

/** Names inside the scratch directory that the generators refer to. */
export const FIXTURES = {
  /** A regular file of FIXTURE_FILE_BYTES bytes: what Range requests read. */
  file: "data.bin",
  empty: "empty.txt",
  dir: "dir",
  subdir: "dir/sub",
  /** `loop -> loop` */
  loop: "loop",
  /** `a -> b`, `b -> a` */
  loopA: "a",
  loopB: "b",
  /** Where uploads go (created on demand by the agent). */
  uploads: "up",
} as const;

export const FIXTURE_FILE_BYTES = 10_000;

/** Creates the fixtures; safe to call again on the same directory. */
export async function prepareHttpScratch(scratch: string): Promise<void> {
  await mkdir(posix.join(scratch, FIXTURES.subdir), { recursive: true });
  await writeFile(posix.join(scratch, FIXTURES.file), Buffer.alloc(FIXTURE_FILE_BYTES, 0x61));
  await writeFile(posix.join(scratch, FIXTURES.empty), "");
  const link = (target: string, name: string) => symlink(target, posix.join(scratch, name)).catch(() => undefined);
  await link("loop", FIXTURES.loop);
  await link("b", FIXTURES.loopA);
  await link("a", FIXTURES.loopB);
}

/** Mostly HTTP/1.1 (which the raw socket can say anything on), some HTTP/2. */
export const transports: fc.Arbitrary<Transport> = fc.oneof(
  { arbitrary: fc.constant<Transport>("http1"), weight: 4 },
  { arbitrary: fc.constant<Transport>("h2"), weight: 1 },
);

/** The headers HTTP/2 forbids (RFC 9113 §8.2.2); node:http2 refuses them client-side. */
const CONNECTION_SPECIFIC = new Set(["connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection", "host", "te"]);

/** A request as the transport can carry it: HTTP/2 drops connection-specific headers. */
export function forTransport(spec: RequestSpec): RequestSpec {
  if (spec.transport === "http1") return spec;
  return { ...spec, headers: spec.headers.filter(([name]) => !CONNECTION_SPECIFIC.has(name.toLowerCase())) };
}

/**
 * Credentials: mostly the valid token, so that requests get past the access check; sometimes
 * none, a wrong one, or a near miss, so that the check itself is exercised.
 */
export function accessHeaders(ctx: FuzzContext): fc.Arbitrary<Header[]> {
  const wrong = fc.oneof(
    fc.constant(""),
    fc.constant(ctx.token.slice(0, -1)),
    fc.constant(`${ctx.token}x`),
    fc.constant(ctx.token.toUpperCase() === ctx.token ? `${ctx.token}x` : ctx.token.toUpperCase()),
    fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, "")),
  );
  return fc.oneof(
    { arbitrary: fc.constant<Header[]>([["x-access-token", ctx.token]]), weight: 5 },
    {
      arbitrary: fc.constant<Header[]>([
        ["x-access-token", ctx.token],
        ["authorization", "Bearer root"],
      ]),
      weight: 2,
    },
    { arbitrary: fc.constant<Header[]>([]), weight: 1 },
    { arbitrary: wrong.map((value): Header[] => [["x-access-token", value]]), weight: 1 },
  );
}

// --- paths -----------------------------------------------------------------------------------

/** Percent-encodes a path segment (keeps it a single segment). */
export const encodeSegment = (text: string): string => encodeURIComponent(text);

/** The scratch directory as URL path segments (no leading slash). */
export const encodedScratch = (ctx: FuzzContext): string => ctx.scratch.replace(/^\/+/, "").split("/").map(encodeSegment).join("/");

const fixtureNames = fc.constantFrom("data.bin", "empty.txt", "dir", "sub", "loop", "a", "b", "up", "new", "x.txt", "dir/sub");

/** Lone surrogates and other byte sequences that are not UTF-8, as a URL says them. */
const invalidUtf8 = fc.constantFrom("%C0%AF", "%FF", "%ED%A0%80", "%ED%BF%BF", "%E2%82", "%F8%88%80%80%80", "%C0%80", "%80", "%", "%zz", "%2", "%u002e");

/** Dots and slashes in disguise; the agent decodes once, so `%252e` must stay a literal name. */
const disguised = fc.constantFrom("%2e%2e", "%2E.", ".%2e", "%252e%252e", "..%2f..", "%2f", "%2F%2F", "%5c..%5c", "..%00", "%2e", "..;", ".../", "..\\..");

/** One raw (as sent in a URL) path segment. */
export const rawSegment: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fixtureNames, weight: 6 },
  { arbitrary: fc.constantFrom("..", ".", ""), weight: 3 },
  { arbitrary: disguised, weight: 2 },
  { arbitrary: invalidUtf8, weight: 2 },
  { arbitrary: fc.constantFrom("a%00b", "%00", "x%00.txt"), weight: 1 },
  { arbitrary: fc.integer({ min: 250, max: 600 }).map((n) => "n".repeat(n)), weight: 1 },
  { arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 8 }).map(encodeSegment), weight: 2 },
  { arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 6 }).map(encodeSegment), weight: 1 },
  { arbitrary: fc.constantFrom("~", "~root", "a b", "a+b", "a?b", "a#b", "%3F", "%23", "%20"), weight: 1 },
);

/** A path after the scratch directory (or after nothing): segments, maybe a trailing slash. */
export const rawRelativePath: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.tuple(fc.array(rawSegment, { minLength: 0, maxLength: 6 }), fc.boolean()).map(([s, slash]) => s.join("/") + (slash ? "/" : "")), weight: 8 },
  // `..` runs, deep enough to climb out of any scratch directory.
  { arbitrary: fc.tuple(fc.integer({ min: 1, max: 40 }), fixtureNames).map(([n, name]) => `${"../".repeat(n)}${name}`), weight: 2 },
  // Over PATH_MAX in total, every segment short.
  { arbitrary: fc.integer({ min: 1100, max: 2500 }).map((n) => "ab/".repeat(n)), weight: 1 },
  // One segment over NAME_MAX.
  { arbitrary: fc.integer({ min: 256, max: 4200 }).map((n) => `up/${"L".repeat(n)}`), weight: 1 },
);

/** Decodes like a lenient query parser: the whole value, or nothing when it is not valid UTF-8. */
function decodeLenient(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

/** Decodes only %XX below 0x80: what a parser that decodes byte by byte makes of dots and slashes. */
const decodeAscii = (text: string): string => text.replace(/%([0-7][0-9a-fA-F])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));

function inside(scratch: string, path: string): boolean {
  if (!path.startsWith("/") || path.includes("\\")) return false;
  const resolved = posix.resolve("/", path);
  return resolved === scratch || resolved.startsWith(`${scratch}/`);
}

/**
 * Whether an upload may be sent to `path` (as written in a query string or a form): absolute, and
 * inside the scratch directory however it is decoded (none, once, twice, byte by byte).
 */
export function uploadPathIsSafe(ctx: FuzzContext, path: string): boolean {
  const once = decodeLenient(path);
  const forms = [path, once, decodeLenient(once), decodeAscii(path), decodeAscii(once)];
  return forms.every((form) => inside(ctx.scratch, form));
}

/** `path` when it is safe to upload to, else a harmless default inside the scratch directory. */
export function safeUploadPath(ctx: FuzzContext, path: string): string {
  return uploadPathIsSafe(ctx, path) ? path : `${ctx.scratch}/${FIXTURES.uploads}/fallback.bin`;
}

/** Percent-encodes a query value (the `?path=` of an upload). */
export const queryValue = (text: string): string => encodeURIComponent(text);

// --- signed URLs -------------------------------------------------------------------------------

/** docs/wire-contract.md: "v1_" + unpadded base64(sha256("<path>:<op>:<user>:<token>[:<expiration>]")). */
export function signUrl(path: string | undefined, op: "read" | "write", user: string, token: string, expiration?: string): string {
  const signed = path ? `/${path.replace(/^\/+/, "")}` : "/";
  const raw = expiration === undefined ? `${signed}:${op}:${user}:${token}` : `${signed}:${op}:${user}:${token}:${expiration}`;
  return `v1_${createHash("sha256").update(raw, "utf8").digest("base64").replace(/=+$/, "")}`;
}

// --- bodies ------------------------------------------------------------------------------------

/** A minimal well-formed upload form: one file part. `fileName` must be safe for the request. */
export function simpleForm(boundary: string, fileName: string, content: Uint8Array, fields: readonly (readonly [string, string])[] = []): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`, "utf8"));
  }
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${fileName}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      "utf8",
    ),
    Buffer.from(content),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  return Buffer.concat(parts);
}

export const BOUNDARY = "----http-fuzz-boundary-7d3f";
export const formContentType = `multipart/form-data; boundary=${BOUNDARY}`;

/** Small file contents: empty, a few bytes, a few KiB. */
export const smallContent: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 64 }),
  fc.integer({ min: 1, max: 8192 }).map((n) => new Uint8Array(n).fill(0x41)),
);
