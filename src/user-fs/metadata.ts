/**
 * A file's metadata: its `user.e2b.*` extended attributes, which envd's SDK writes with an upload
 * (`X-Metadata-<key>` headers) and reads back in every entry. Node has no API for extended
 * attributes; native/fs-creds has the two calls, which also run on the file workers (as the caller).
 */
import { createRequire } from "node:module";

interface MetadataCalls {
  readMetadata(path: string): Record<string, string>;
  writeMetadata(fd: number, metadata: Readonly<Record<string, string>>): void;
}

// src/user-fs and dist/user-fs are both two levels below the repository.
const native = createRequire(import.meta.url)("../../native/fs-creds/build/Release/fs_creds.node") as MetadataCalls;

/** The metadata of `path` itself (a link's own), as the agent; {} where there is none or none can be kept. */
export function readMetadataAsAgent(path: string): Record<string, string> {
  return native.readMetadata(path);
}

/** Makes the metadata of the open file exactly `metadata` (an empty record clears it). */
export function writeMetadata(fd: number, metadata: Readonly<Record<string, string>>): void {
  native.writeMetadata(fd, metadata);
}

/** envd's limits on metadata sent as headers: printable ASCII, keys up to 246 bytes, 4096 bytes in all. */
export const MAX_METADATA_KEY_BYTES = 246;
export const MAX_METADATA_BYTES = 4096;
const PRINTABLE = /^[\x20-\x7e]*$/;

/**
 * The metadata an upload's `X-Metadata-<key>` headers carry (keys lowercased, the first value of a
 * repeated header), or the reason it cannot be kept.
 */
export function metadataFromHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> | string {
  const metadata: Record<string, string> = {};
  let total = 0;
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.startsWith("x-metadata-") || raw === undefined) continue;
    const key = name.slice("x-metadata-".length);
    const value = Array.isArray(raw) ? (raw[0] ?? "") : raw;
    if (key === "" || !PRINTABLE.test(key) || !PRINTABLE.test(value))
      return `invalid metadata: ${JSON.stringify(key.slice(0, 64))}: only printable ASCII is kept`;
    if (Buffer.byteLength(key) > MAX_METADATA_KEY_BYTES)
      return `invalid metadata: key ${JSON.stringify(key.slice(0, 64))} is longer than ${MAX_METADATA_KEY_BYTES} bytes`;
    if (key in metadata) continue;
    metadata[key] = value;
    total += Buffer.byteLength(key) + Buffer.byteLength(value);
    if (total > MAX_METADATA_BYTES) return `invalid metadata: more than ${MAX_METADATA_BYTES} bytes in all`;
  }
  return metadata;
}
