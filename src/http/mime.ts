/**
 * Content types for downloads, by file extension. A short table of what sandboxes commonly hold;
 * anything else is application/octet-stream, which every client can save.
 */
import { posix } from "node:path";

const TEXT = "; charset=utf-8";

const BY_EXTENSION: Readonly<Record<string, string>> = {
  // text and code: declared UTF-8, which is what tools in a sandbox write
  txt: `text/plain${TEXT}`,
  log: `text/plain${TEXT}`,
  md: `text/markdown${TEXT}`,
  csv: `text/csv${TEXT}`,
  tsv: `text/tab-separated-values${TEXT}`,
  html: `text/html${TEXT}`,
  htm: `text/html${TEXT}`,
  css: `text/css${TEXT}`,
  js: `text/javascript${TEXT}`,
  mjs: `text/javascript${TEXT}`,
  cjs: `text/javascript${TEXT}`,
  ts: `text/plain${TEXT}`,
  py: `text/x-python${TEXT}`,
  sh: `text/x-shellscript${TEXT}`,
  yaml: `application/yaml${TEXT}`,
  yml: `application/yaml${TEXT}`,
  toml: `application/toml${TEXT}`,
  json: `application/json${TEXT}`,
  ipynb: `application/x-ipynb+json${TEXT}`,
  xml: `application/xml${TEXT}`,
  svg: "image/svg+xml",
  // images, audio, video
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  bmp: "image/bmp",
  ico: "image/vnd.microsoft.icon",
  tif: "image/tiff",
  tiff: "image/tiff",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  ogg: "audio/ogg",
  flac: "audio/flac",
  mp4: "video/mp4",
  webm: "video/webm",
  mov: "video/quicktime",
  // documents and archives
  pdf: "application/pdf",
  zip: "application/zip",
  gz: "application/gzip",
  tgz: "application/gzip",
  tar: "application/x-tar",
  bz2: "application/x-bzip2",
  xz: "application/x-xz",
  zst: "application/zstd",
  "7z": "application/x-7z-compressed",
  wasm: "application/wasm",
  parquet: "application/vnd.apache.parquet",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  woff: "font/woff",
  woff2: "font/woff2",
  ttf: "font/ttf",
  otf: "font/otf",
};

export const DEFAULT_CONTENT_TYPE = "application/octet-stream";

export function contentTypeFor(path: string): string {
  const ext = posix.extname(path).slice(1).toLowerCase();
  return BY_EXTENSION[ext] ?? DEFAULT_CONTENT_TYPE;
}
