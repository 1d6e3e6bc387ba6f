/**
 * Family "path": download and upload targets (ours and envd's /files) that a path parser can trip on: NUL bytes, names over
 * NAME_MAX and paths over PATH_MAX, `..` runs, unicode, bytes that are not UTF-8, double encoding,
 * symlink loops, empty paths, trailing slashes and directories.
 *
 * Downloads may aim anywhere (they only read). Uploads go through `safeUploadPath`, and their
 * file part is named by a plain base name, which only ever lands inside the named directory. (A
 * target the agent cannot resolve at all — a NUL byte, over PATH_MAX — leaves it nowhere to stage
 * the part but the caller's home while the form arrives; it removes it when it refuses the form.)
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
  rawRelativePath,
  safeUploadPath,
  simpleForm,
  smallContent,
  transports,
  type Header,
} from "./http-common.js";

/** Where a download path starts: the scratch directory, the root, the caller's home, or nothing. */
function downloadBase(ctx: FuzzContext): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constant(`${encodedScratch(ctx)}/`), weight: 6 },
    { arbitrary: fc.constant(""), weight: 1 },
    { arbitrary: fc.constant("~/"), weight: 1 },
    { arbitrary: fc.constant(`/${encodedScratch(ctx)}/`), weight: 1 }, // `//tmp/...`
    { arbitrary: fc.constant(`${encodedScratch(ctx).replace(/\//g, "%2F")}%2F`), weight: 1 },
  );
}

function downloads(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc
    .record({
      transport: transports,
      method: fc.constantFrom("GET", "GET", "GET", "HEAD"),
      base: downloadBase(ctx),
      rest: rawRelativePath,
      access: accessHeaders(ctx),
      query: fc.constantFrom("", "", "?", "?x=1", "?path=/etc/passwd", "?#frag"),
    })
    .map(({ transport, method, base, rest, access, query }) =>
      forTransport({ family: "path", transport, method, target: `/download/${base}${rest}${query}`, headers: access }),
    );
}

/** The odd shapes of an empty download path. */
function emptyDownloads(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc
    .record({
      target: fc.constantFrom("/download", "/download/", "/download//", "/download/?", "/download/%2F", "/download/.", "/download/.."),
      access: accessHeaders(ctx),
      transport: transports,
    })
    .map(({ target, access, transport }) => forTransport({ family: "path", transport, method: "GET", target, headers: access }));
}

/** The path an upload names: the scratch directory's uploads folder, the fixtures, then `rest`. */
function uploadTarget(ctx: FuzzContext): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(FIXTURES.uploads, "", FIXTURES.dir, FIXTURES.loop, `${FIXTURES.loopA}/x`, FIXTURES.file), rawRelativePath)
    .map(([start, rest]) => safeUploadPath(ctx, `${ctx.scratch}/${start}${start === "" ? "" : "/"}${rest}`));
}

function uploads(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc
    .record({
      transport: transports,
      target: uploadTarget(ctx),
      viaField: fc.boolean(),
      // Raw: the %XX in the name reach the agent's query decoder (NUL bytes, bad UTF-8).
      rawQuery: fc.boolean(),
      fileName: fc.constantFrom("f.bin", "x.txt", "..", ".", "", "ü.txt"),
      content: smallContent,
      access: accessHeaders(ctx),
    })
    .map(({ transport, target, viaField, rawQuery, fileName, content, access }) => {
      // The query path stays (encoded) as the directory of last resort while the form arrives;
      // the form field, when sent, comes first and wins.
      const fields: [string, string][] = viaField ? [["path", target]] : [];
      const body = simpleForm(BOUNDARY, fileName, content, fields);
      const headers: Header[] = [...access, ["content-type", formContentType]];
      return forTransport({
        family: "path",
        transport,
        method: "POST",
        target: `/upload?path=${rawQuery ? queryRaw(target) : queryValue(target)}`,
        headers,
        body: [body],
      });
    });
}

/** Keeps %XX as they are; encodes only what would end the value or the request line. */
const queryRaw = (text: string): string => text.replace(/[^\x21-\x7e]|[&#+]/gu, (ch) => encodeURIComponent(ch));

/** envd's GET /files: the path in the query, anywhere (reads only), as sent or encoded. */
function envdReads(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc
    .record({
      transport: transports,
      method: fc.constantFrom("GET", "GET", "HEAD"),
      path: fc.oneof(
        fc.tuple(downloadBase(ctx), rawRelativePath).map(([base, rest]) => `${base}${rest}`),
        fc.constantFrom("", "~", "relative.txt", FIXTURES.file),
      ),
      raw: fc.boolean(),
      encoding: fc.constantFrom<string | undefined>(undefined, "gzip", "gzip;q=0", "br, gzip", "identity"),
      access: accessHeaders(ctx),
    })
    .map(({ transport, method, path, raw, encoding, access }) => {
      const headers: Header[] = encoding === undefined ? [...access] : [...access, ["accept-encoding", encoding]];
      return forTransport({ family: "path", transport, method, target: `/files?path=${raw ? queryRaw(path) : queryValue(path)}`, headers });
    });
}

/** envd's POST /files: a raw body or a form part, to a safe path or named by the part's file name. */
function envdWrites(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc
    .record({
      transport: transports,
      target: uploadTarget(ctx),
      octets: fc.boolean(),
      inQuery: fc.boolean(),
      content: smallContent,
      access: accessHeaders(ctx),
    })
    .map(({ transport, target, octets, inQuery, content, access }) => {
      const query = inQuery || octets ? `?path=${queryValue(target)}` : "";
      // Without ?path= the part's file name is the target: only a safe one is sent.
      const body = octets ? Buffer.from(content) : simpleForm(BOUNDARY, inQuery ? "f.bin" : target, content, []);
      const headers: Header[] = [...access, ["content-type", octets ? "application/octet-stream" : formContentType]];
      return forTransport({ family: "path", transport, method: "POST", target: `/files${query}`, headers, body: [body] });
    });
}

export function pathRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc.oneof(
    { arbitrary: downloads(ctx), weight: 5 },
    { arbitrary: emptyDownloads(ctx), weight: 1 },
    { arbitrary: uploads(ctx), weight: 4 },
    { arbitrary: envdReads(ctx), weight: 2 },
    { arbitrary: envdWrites(ctx), weight: 2 },
  );
}
