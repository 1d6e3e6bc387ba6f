/**
 * The `Range` request header (RFC 9110 §14.2) for one file of known size.
 */

export type RangeRequest =
  /** No usable Range header: send the whole file with 200. */
  | { readonly kind: "full" }
  /** One satisfiable range, inclusive bounds: 206. */
  | { readonly kind: "partial"; readonly start: number; readonly end: number }
  /** Nothing the file can satisfy: 416 with `Content-Range: bytes *\/size`. */
  | { readonly kind: "unsatisfiable" };

const FULL: RangeRequest = { kind: "full" };
const UNSATISFIABLE: RangeRequest = { kind: "unsatisfiable" };

// first-pos "-" [ last-pos ]  or  "-" suffix-length
const RANGE_SPEC = /^(?:(\d+)-(\d*)|-(\d+))$/;

type Spec = { readonly first: number; readonly last: number | undefined } | { readonly suffix: number };

function parseSpec(text: string): Spec | undefined {
  const match = RANGE_SPEC.exec(text.trim());
  if (match === null) return undefined;
  const [, first, last, suffix] = match;
  if (suffix !== undefined) return { suffix: Number(suffix) };
  const hasLast = last !== undefined && last !== "";
  // Compared as the integers they spell: past 2^53 (or 309 digits) doubles tie where they differ.
  if (hasLast && BigInt(last) < BigInt(first!)) return undefined; // invalid, so the whole header is ignored
  return { first: Number(first), last: hasLast ? Number(last) : undefined };
}

function resolveSpec(spec: Spec, size: number): RangeRequest {
  if ("suffix" in spec) {
    // A suffix longer than the file means the whole file; an empty file has no bytes to give.
    if (spec.suffix === 0 || size === 0) return UNSATISFIABLE;
    return { kind: "partial", start: Math.max(0, size - spec.suffix), end: size - 1 };
  }
  if (spec.first >= size) return UNSATISFIABLE;
  return { kind: "partial", start: spec.first, end: Math.min(spec.last ?? size - 1, size - 1) };
}

/**
 * Interprets a Range header. A header that is malformed, or in a unit other than bytes, is ignored
 * as RFC 9110 requires (200 with the whole file). Several ranges are answered with the whole file
 * as well, which the RFC allows: multipart/byteranges buys little here, and serving the file once
 * avoids the amplification that many small or overlapping ranges invite. They still get a 416 when
 * none of them could be satisfied.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return FULL;
  const eq = header.indexOf("=");
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== "bytes") return FULL;
  const specs: Spec[] = [];
  for (const part of header.slice(eq + 1).split(",")) {
    if (part.trim() === "") continue; // the grammar allows empty list elements
    const spec = parseSpec(part);
    if (spec === undefined) return FULL;
    specs.push(spec);
  }
  if (specs.length === 0) return FULL;
  const resolved = specs.map((spec) => resolveSpec(spec, size));
  if (resolved.every((r) => r.kind === "unsatisfiable")) return UNSATISFIABLE;
  return resolved.length === 1 ? resolved[0]! : FULL;
}

export function contentRange(range: { readonly start: number; readonly end: number }, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

export const unsatisfiedRange = (size: number): string => `bytes */${size}`;
