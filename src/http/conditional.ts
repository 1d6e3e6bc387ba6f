/**
 * Validators and conditional requests for downloads (RFC 9110 §8.8, §13): a strong ETag and
 * Last-Modified per file, and the evaluation order of §13.2.2.
 */
import type { BigIntStats } from "node:fs";
import { httpDateSeconds } from "./http-date.js";

export interface Validators {
  /** Strong: inode, size and nanosecond mtime change whenever the bytes can have changed. */
  readonly etag: string;
  readonly lastModified: string;
  /** Whole seconds, the resolution HTTP dates have. */
  readonly modifiedSeconds: number;
}

export function validatorsOf(st: BigIntStats): Validators {
  const etag = `"${st.ino.toString(36)}-${st.size.toString(36)}-${st.mtimeNs.toString(36)}"`;
  const modifiedSeconds = Number(st.mtimeNs / 1_000_000_000n);
  return { etag, lastModified: new Date(modifiedSeconds * 1000).toUTCString(), modifiedSeconds };
}

type Header = string | undefined;

export interface Conditions {
  readonly ifMatch: Header;
  readonly ifNoneMatch: Header;
  readonly ifModifiedSince: Header;
  readonly ifUnmodifiedSince: Header;
  readonly ifRange: Header;
}

const opaque = (tag: string): string => (tag.startsWith("W/") ? tag.slice(2) : tag);

/** The entity tags of an If-Match / If-None-Match list; `*` stays as is. */
function tagList(header: string): string[] {
  return header.match(/\*|(?:W\/)?"[^"]*"/g) ?? [];
}

function matchesAny(header: string, etag: string, weak: boolean): boolean {
  return tagList(header).some((tag) => {
    if (tag === "*") return true;
    if (weak) return opaque(tag) === opaque(etag);
    return !tag.startsWith("W/") && !etag.startsWith("W/") && tag === etag;
  });
}

/** What the preconditions decide before Range is looked at. */
export type Precondition = "proceed" | "not-modified" | "failed";

export function evaluatePreconditions(c: Conditions, v: Validators): Precondition {
  if (c.ifMatch !== undefined) {
    if (!matchesAny(c.ifMatch, v.etag, false)) return "failed";
  } else if (c.ifUnmodifiedSince !== undefined) {
    const since = httpDateSeconds(c.ifUnmodifiedSince);
    if (since !== undefined && v.modifiedSeconds > since) return "failed";
  }
  if (c.ifNoneMatch !== undefined) {
    if (matchesAny(c.ifNoneMatch, v.etag, true)) return "not-modified";
  } else if (c.ifModifiedSince !== undefined) {
    const since = httpDateSeconds(c.ifModifiedSince);
    if (since !== undefined && v.modifiedSeconds <= since) return "not-modified";
  }
  return "proceed";
}

/**
 * Whether a Range may be honoured: with If-Range, only when the client's copy is still current
 * (strong ETag comparison, or exactly the Last-Modified date); otherwise the whole file is sent.
 */
export function rangeAllowed(ifRange: Header, v: Validators): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) return !value.startsWith("W/") && value === v.etag;
  const date = httpDateSeconds(value);
  return date !== undefined && date === v.modifiedSeconds;
}
