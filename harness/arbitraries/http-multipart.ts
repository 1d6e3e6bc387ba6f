/**
 * Family "multipart": upload bodies that a form parser can trip on — bad, missing and huge
 * boundaries, no closing boundary, no parts, parts without a file name, many parts, part headers
 * of 100 KiB, bodies cut off mid-way, the wrong Content-Type, a Content-Length that lies, chunked
 * bodies with and without their last chunk.
 *
 * Safety: every request names a safe `?path=` (a directory or file inside the scratch directory),
 * or else every file part is named by a safe absolute path; field values are safe paths whatever
 * their field name, and file names never hold a quote or backslash (which could end or escape
 * the quoted string and leave a relative name behind).
 */
import fc from "fast-check";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { accessHeaders, FIXTURES, forTransport, queryValue, safeUploadPath, smallContent, transports, uploadPathIsSafe, type Header } from "./http-common.js";

interface Part {
  readonly name: string;
  /** undefined: no filename parameter. */
  readonly fileName: string | undefined;
  /** Also send `filename*=UTF-8''<encoded>` with the same name. */
  readonly extended: boolean;
  readonly contentType: string | undefined;
  /** An extra header line of this many bytes (busboy allows 16 KiB of part headers). */
  readonly padHeader: number;
  readonly disposition: string;
  readonly content: Uint8Array;
}

const BOUNDARIES = ["b", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "x".repeat(70), "y".repeat(71), "z".repeat(2000), "with space", 'quo"te', "--", "é"];

/** Names a file part may carry when a safe directory is already named: base names only. */
const relativeFileName = fc.constantFrom("f.bin", "a.txt", "ü.txt", "dir", "..", ".", "", "x y", "n".repeat(300), "%2e%2e", "a%00b", "a\u0000b");

function absoluteFileName(ctx: FuzzContext): fc.Arbitrary<string> {
  return fc
    .constantFrom("f.bin", "sub/g.bin", "", "..", "../up/h.bin", "dir/", "loop", "a/x", "n".repeat(300), "nul\u0000.bin")
    .map((rest) => safeUploadPath(ctx, `${ctx.scratch}/${FIXTURES.uploads}/${rest}`));
}

/**
 * A part that busboy may take for a file. Without a safe directory, a file part with no name
 * would be staged in the caller's home while the agent waits for a `path` field: such parts then
 * never claim application/octet-stream (which makes a nameless part a file).
 */
function part(ctx: FuzzContext, relativeNamesAllowed: boolean): fc.Arbitrary<Part> {
  const names = relativeNamesAllowed ? fc.oneof(relativeFileName, absoluteFileName(ctx)) : absoluteFileName(ctx);
  const safeValue = Buffer.from(`${ctx.scratch}/${FIXTURES.uploads}/unnamed.bin`);
  return partShape(names).map((p) => {
    if (p.fileName !== undefined) return p;
    // No file name: busboy may read it as a text field, whose name may be `path`.
    const contentType = !relativeNamesAllowed && p.contentType === "application/octet-stream" ? "text/plain" : p.contentType;
    return { ...p, contentType, content: safeValue };
  });
}

function partShape(names: fc.Arbitrary<string>): fc.Arbitrary<Part> {
  return fc.record({
    name: fc.constantFrom("file", "file", "path", "other", "", "fïle", "name with space"),
    fileName: fc.option(names, { nil: undefined, freq: 5 }),
    extended: fc.boolean(),
    contentType: fc.constantFrom(undefined, "application/octet-stream", "text/plain", "text/plain; charset=latin1", "garbage", ""),
    padHeader: fc.oneof({ arbitrary: fc.constant(0), weight: 9 }, { arbitrary: fc.constantFrom(100, 16_000, 17_000, 100 * 1024), weight: 1 }),
    disposition: fc.constantFrom("form-data", "form-data", "form-data", "attachment", "FORM-DATA", "", "form-data;;"),
    content: smallContent,
  });
}

/** Field parts: their value is always a safe path (the agent may read any field as `path`). */
function field(ctx: FuzzContext): fc.Arbitrary<Part> {
  return fc
    .record({
      name: fc.constantFrom("path", "path", "other"),
      value: fc.constantFrom("", FIXTURES.uploads, `${FIXTURES.uploads}/`, `${FIXTURES.uploads}/fld.bin`, FIXTURES.dir, FIXTURES.loop, FIXTURES.file),
      huge: fc.oneof({ arbitrary: fc.constant(false), weight: 9 }, { arbitrary: fc.constant(true), weight: 1 }),
    })
    .map(({ name, value, huge }): Part => {
      const path = value === "" ? "" : safeUploadPath(ctx, `${ctx.scratch}/${value}`);
      const content = huge ? `${ctx.scratch}/${FIXTURES.uploads}/${"h".repeat(9000)}` : path;
      return { name, fileName: undefined, extended: false, contentType: undefined, padHeader: 0, disposition: "form-data", content: Buffer.from(content) };
    });
}

function partBytes(p: Part, boundary: string): Buffer {
  let disposition = `Content-Disposition: ${p.disposition}; name="${p.name}"`;
  if (p.fileName !== undefined) disposition += `; filename="${p.fileName}"`;
  if (p.fileName !== undefined && p.extended) disposition += `; filename*=UTF-8''${encodeURIComponent(p.fileName)}`;
  const lines = [`--${boundary}`, disposition];
  if (p.contentType !== undefined) lines.push(`Content-Type: ${p.contentType}`);
  if (p.padHeader > 0) lines.push(`X-Pad: ${"p".repeat(p.padHeader)}`);
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "utf8"), Buffer.from(p.content), Buffer.from("\r\n")]);
}

type Ending = "closed" | "no-closing" | "closing-without-dashes" | "epilogue" | "nothing";

function formBody(parts: readonly Part[], boundary: string, ending: Ending, preamble: string): Buffer {
  const chunks = [Buffer.from(preamble), ...parts.map((p) => partBytes(p, boundary))];
  if (ending === "closed") chunks.push(Buffer.from(`--${boundary}--\r\n`));
  if (ending === "closing-without-dashes") chunks.push(Buffer.from(`--${boundary}\r\n`));
  if (ending === "epilogue") chunks.push(Buffer.from(`--${boundary}--\r\ntrailing garbage\r\n--${boundary}--`));
  if (ending === "nothing") return Buffer.alloc(0);
  return Buffer.concat(chunks);
}

function contentTypeFor(kind: string, boundary: string): string | undefined {
  switch (kind) {
    case "right":
      return `multipart/form-data; boundary=${boundary}`;
    case "quoted":
      return `multipart/form-data; boundary="${boundary}"`;
    case "upper":
      return `MULTIPART/FORM-DATA; BOUNDARY=${boundary}`;
    case "no-boundary":
      return "multipart/form-data";
    case "empty-boundary":
      return "multipart/form-data; boundary=";
    case "other-boundary":
      return `multipart/form-data; boundary=${boundary}x`;
    case "mixed":
      return `multipart/mixed; boundary=${boundary}`;
    case "text":
      return "text/plain";
    case "json":
      return "application/json";
    case "urlencoded":
      return "application/x-www-form-urlencoded";
    case "absent":
      return undefined;
    default:
      return `multipart/form-data; boundary=${boundary}; boundary=other`;
  }
}

/** How the body travels: honestly, with a Content-Length that lies, chunked, or cut off. */
type Framing = "exact" | "shorter" | "longer" | "chunked" | "chunked-unterminated" | "cut";

function chunked(body: Buffer, terminated: boolean): Buffer {
  const chunks: Buffer[] = [];
  for (let at = 0; at < body.length; at += 4096) {
    const piece = body.subarray(at, at + 4096);
    chunks.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n"));
  }
  if (terminated) chunks.push(Buffer.from("0\r\n\r\n"));
  return Buffer.concat(chunks);
}

export function multipartRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  const target = fc.option(
    fc.constantFrom(FIXTURES.uploads, `${FIXTURES.uploads}/`, `${FIXTURES.uploads}/q.bin`, `${FIXTURES.uploads}/new/deep/`, FIXTURES.dir, FIXTURES.file),
    { nil: undefined, freq: 4 },
  );
  return fc.record({ transport: transports, target, access: accessHeaders(ctx) }).chain(({ transport, target, access }) => {
    const queryPath = target === undefined ? undefined : `${ctx.scratch}/${target}`;
    const relativeNamesAllowed = queryPath !== undefined && uploadPathIsSafe(ctx, queryPath);
    const many = fc.array(part(ctx, relativeNamesAllowed), { minLength: 20, maxLength: 120 });
    const parts = fc.oneof(
      {
        arbitrary: fc.array(fc.oneof({ arbitrary: part(ctx, relativeNamesAllowed), weight: 3 }, { arbitrary: field(ctx), weight: 1 }), { maxLength: 4 }),
        weight: 8,
      },
      { arbitrary: many, weight: 1 },
    );
    return fc
      .record({
        parts,
        boundary: fc.oneof({ arbitrary: fc.constant("b0undary"), weight: 6 }, { arbitrary: fc.constantFrom(...BOUNDARIES), weight: 2 }),
        contentType: fc.oneof(
          { arbitrary: fc.constant("right"), weight: 8 },
          {
            arbitrary: fc.constantFrom(
              "quoted",
              "upper",
              "no-boundary",
              "empty-boundary",
              "other-boundary",
              "mixed",
              "text",
              "json",
              "urlencoded",
              "absent",
              "twice",
            ),
            weight: 3,
          },
        ),
        ending: fc.oneof(
          { arbitrary: fc.constant<Ending>("closed"), weight: 6 },
          { arbitrary: fc.constantFrom<Ending>("no-closing", "closing-without-dashes", "epilogue", "nothing"), weight: 2 },
        ),
        preamble: fc.constantFrom("", "", "", "preamble\r\n", "\r\n", "--notboundary\r\n"),
        framing: fc.oneof(
          { arbitrary: fc.constant<Framing>("exact"), weight: 6 },
          { arbitrary: fc.constantFrom<Framing>("shorter", "longer", "chunked", "chunked-unterminated", "cut"), weight: 4 },
        ),
        lie: fc.integer({ min: 1, max: 5000 }),
        cutAt: fc.double({ min: 0, max: 1, noNaN: true }),
      })
      .map(({ parts, boundary, contentType, ending, preamble, framing, lie, cutAt }): RequestSpec => {
        const body = formBody(parts, boundary, ending, preamble);
        const headers: Header[] = [...access];
        const type = contentTypeFor(contentType, boundary);
        if (type !== undefined) headers.push(["content-type", type]);
        if (contentType === "twice") headers.push(["content-type", "text/plain"]);
        const requestTarget = queryPath === undefined ? "/upload" : `/upload?path=${queryValue(queryPath)}`;
        const base = { family: "multipart", transport, method: "POST", target: requestTarget };
        switch (framing) {
          case "exact":
            return forTransport({ ...base, headers, body: [body] });
          case "shorter":
            return forTransport({ ...base, headers: [...headers, ["content-length", String(Math.max(0, body.length - lie))]], body: [body] });
          case "longer":
            // The client then stops sending (half-closes): a server waiting for the rest is right to.
            return forTransport({ ...base, headers: [...headers, ["content-length", String(body.length + lie)]], body: [body], cutAfter: body.length });
          case "chunked":
          case "chunked-unterminated": {
            const terminated = framing === "chunked";
            const encoded = transport === "h2" ? body : chunked(body, terminated);
            const spec = { ...base, headers: [...headers, ["transfer-encoding", "chunked"] as const], body: [encoded] };
            return forTransport(terminated ? spec : { ...spec, cutAfter: encoded.length });
          }
          case "cut":
            return forTransport({ ...base, headers, body: [body], cutAfter: Math.floor(body.length * cutAt) });
          default:
            throw new Error(`unknown framing ${framing satisfies never}`);
        }
      });
  });
}
