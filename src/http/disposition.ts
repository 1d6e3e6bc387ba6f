/**
 * `Content-Disposition: attachment` with the file name (RFC 6266): a plain ASCII `filename` for
 * old clients and `filename*` (RFC 8187, formerly 5987) carrying the exact UTF-8 name.
 */

/** Printable ASCII except the quote and backslash, which would need escaping in a quoted-string. */
const UNSAFE_IN_QUOTED = /[^\x20-\x7e]|["\\]/g;
/** RFC 8187 attr-char: what may appear unencoded in `filename*`. */
const NOT_ATTR_CHAR = /[^A-Za-z0-9!#$&+\-.^_`|~]/g;

function percentEncodeUtf8(text: string): string {
  return Buffer.from(text, "utf8")
    .toString("latin1")
    .replace(NOT_ATTR_CHAR, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

/** `name` comes from a percent-decoded URL, so it is well-formed UTF-16. */
export function attachment(name: string): string {
  return disposition("attachment", name);
}

/** Shown in place, named: what envd's GET /files answers (http.ServeContent's callers set it so). */
export function inline(name: string): string {
  return disposition("inline", name);
}

function disposition(kind: "attachment" | "inline", name: string): string {
  const fallback = name.replace(UNSAFE_IN_QUOTED, "_");
  const encoded = percentEncodeUtf8(name);
  if (fallback === name) return `${kind}; filename="${name}"`;
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
