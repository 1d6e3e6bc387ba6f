/**
 * `GET|HEAD /download/<path>`: one file, streamed from disk, with the validators, conditional
 * requests and single byte ranges that browsers, curl and download managers use.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { close, constants, createReadStream, fstat, type BigIntStats, type ReadStream } from "node:fs";
import { pipeline } from "node:stream";
import { promisify } from "node:util";
import { createGzip } from "node:zlib";
import type { OutgoingHttpHeaders } from "node:http";
import { posix } from "node:path";
import { resolvePath } from "../paths.js";
import { fileAccessFor } from "../user-fs/access.js";
import type { User } from "../users.js";
import { evaluatePreconditions, rangeAllowed, validatorsOf, type Conditions, type Validators } from "./conditional.js";
import { attachment } from "./disposition.js";
import { contentTypeFor } from "./mime.js";
import { contentRange, parseRange, unsatisfiedRange, type RangeRequest } from "./range.js";
import { fsHttpError, HttpError, sendError, useJsonErrors } from "./reply-error.js";
import { CHUNK_BYTES, sendFileRange } from "./send-file-range.js";

const PREFIX = "/download/";
/** O_NONBLOCK so that opening a FIFO cannot hang the request; it is refused right after. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * The scheme and authority of an absolute-form request target (`GET http://host/download/x`),
 * which servers must accept (RFC 9112 §3.2.2) and the router already strips for matching.
 */
const ABSOLUTE_FORM_ORIGIN = /^https?:\/\/[^/?]*/i;

/** The URL path after `/download/`, still percent-encoded (taken from the raw URL, decoded once by us). */
function encodedRest(req: FastifyRequest): string {
  const url = req.url.replace(ABSOLUTE_FORM_ORIGIN, "");
  const query = url.indexOf("?");
  const path = query < 0 ? url : url.slice(0, query);
  return path.startsWith(PREFIX) ? path.slice(PREFIX.length) : "";
}

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * What a signed download URL signed: the decoded path after `/download/`, nothing normalised
 * (`signaturePath` adds the leading slash the SDK stripped). Undecodable input is returned as is,
 * which no valid signature matches; the handler then refuses it.
 */
export function signedDownloadPath(req: FastifyRequest): string {
  const rest = encodedRest(req);
  return decode(rest) ?? rest;
}

/** `~` paths are the caller's home; everything else is absolute, whatever slashes it starts with. */
function resolveDownloadPath(rest: string, caller: User): string {
  return resolvePath(rest.startsWith("~") ? rest : `/${rest}`, caller);
}

/** Opened by the caller itself: a file the caller may not read cannot be downloaded as that caller. */
async function openFile(caller: User, path: string): Promise<number> {
  try {
    return await fileAccessFor(caller).open(path, OPEN_FLAGS);
  } catch (err) {
    throw fsHttpError(err, "open", path);
  }
}

const fstatBig = promisify((fd: number, callback: (err: NodeJS.ErrnoException | null, st: BigIntStats) => void) => fstat(fd, { bigint: true }, callback));

function header(req: FastifyRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

function conditionsOf(req: FastifyRequest): Conditions {
  return {
    ifMatch: header(req, "if-match"),
    ifNoneMatch: header(req, "if-none-match"),
    ifModifiedSince: header(req, "if-modified-since"),
    ifUnmodifiedSince: header(req, "if-unmodified-since"),
    ifRange: header(req, "if-range"),
  };
}

function setValidators(reply: FastifyReply, v: Validators): void {
  // Files change under their names: caches may keep a copy but must revalidate it.
  reply.header("etag", v.etag).header("last-modified", v.lastModified).header("cache-control", "no-cache");
}

/** Range only for GET (RFC 9110 §14.2), and only while If-Range says the client's copy is current. */
function rangeFor(req: FastifyRequest, size: number, v: Validators): RangeRequest {
  if (req.method !== "GET") return { kind: "full" };
  const range = header(req, "range");
  if (range === undefined || !rangeAllowed(header(req, "if-range"), v)) return { kind: "full" };
  return parseRange(range, size);
}

/**
 * A file that shrank after we measured it would end the body early under a Content-Length that
 * promised more; cutting the connection tells the client, where a short body would look complete
 * or leave it waiting.
 */
function cutShortResponses(stream: ReadStream, expected: number, reply: FastifyReply): void {
  stream.once("end", () => {
    if (stream.bytesRead < expected) reply.raw.destroy(new Error("file shrank while it was being sent"));
  });
}

async function download(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const rest = decode(encodedRest(req));
  if (rest === undefined) throw new HttpError(400, "invalid path: the URL path is not percent-encoded UTF-8");
  let path: string;
  try {
    path = resolveDownloadPath(rest, req.caller);
  } catch (err) {
    throw fsHttpError(err, "open", rest);
  }
  return sendFile(req, reply, path, { disposition: attachment });
}

export interface SendOptions {
  /** Names the file for the client: a download, or envd's inline. */
  readonly disposition: (name: string) => string;
  /** Compress a whole-file answer when the client accepts gzip (envd's GET /files does). */
  readonly gzip?: boolean;
}

/** Whether Accept-Encoding lists gzip with a non-zero quality. */
function acceptsGzip(req: FastifyRequest): boolean {
  const accepted = header(req, "accept-encoding") ?? "";
  return accepted.split(",").some((item) => {
    const [coding, ...params] = item.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return (coding === "gzip" || coding === "x-gzip") && (q === undefined || Number(q.slice(2)) > 0);
  });
}

/**
 * Sends the file at `path` (resolved) as the caller, with validators, conditional requests and
 * single ranges.
 */
export async function sendFile(req: FastifyRequest, reply: FastifyReply, path: string, options: SendOptions): Promise<FastifyReply> {
  const fd = await openFile(req.caller, path);
  let handedOver = false;
  try {
    const st = await fstatBig(fd);
    if (st.isDirectory()) throw new HttpError(400, `${path} is a directory: only files can be downloaded`);
    if (!st.isFile()) throw new HttpError(400, `${path} is not a regular file`);
    const size = Number(st.size);
    const validators = validatorsOf(st);
    setValidators(reply, validators);
    reply.header("accept-ranges", "bytes");

    const precondition = evaluatePreconditions(conditionsOf(req), validators);
    if (precondition === "not-modified") return reply.code(304).send();
    if (precondition === "failed") return sendError(reply, new HttpError(412, `precondition failed for ${path}`));

    const range = rangeFor(req, size, validators);
    if (range.kind === "unsatisfiable") {
      reply.header("content-range", unsatisfiedRange(size));
      return sendError(reply, new HttpError(416, `range not satisfiable: ${path} has ${size} bytes`));
    }
    const start = range.kind === "partial" ? range.start : 0;
    const end = range.kind === "partial" ? range.end : size - 1;
    const length = end - start + 1;
    reply
      .code(range.kind === "partial" ? 206 : 200)
      .header("content-type", contentTypeFor(path))
      .header("content-length", String(length))
      .header("content-disposition", options.disposition(posix.basename(path)))
      .header("x-content-type-options", "nosniff");
    if (range.kind === "partial") reply.header("content-range", contentRange(range, size));
    if (options.gzip === true) reply.header("vary", "accept-encoding");
    if (req.method === "HEAD" || length === 0) return reply.send();
    // Ranges and their validators are about the file's own bytes: only a whole file is compressed.
    const compress = options.gzip === true && range.kind === "full" && acceptsGzip(req);

    const counted = (bytes: number): void => req.server.metrics.fileBytes.inc({ direction: "download" }, bytes);
    if (!compress) {
      // Written by hand from reused buffers (send-file-range.ts): fastify's stream sending is
      // left out, so the headers set on the reply go out here.
      reply.hijack();
      reply.raw.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
      handedOver = true;
      void sendFileRange(fd, start, length, reply.raw)
        .then(counted)
        .finally(() => close(fd, () => undefined));
      return reply;
    }
    // The stream owns the descriptor from here and closes it when it ends or is destroyed;
    // fastify destroys it when the client goes away mid-download.
    const stream = createReadStream(path, { fd, start, end, highWaterMark: CHUNK_BYTES });
    handedOver = true;
    cutShortResponses(stream, length, reply);
    stream.once("close", () => counted(stream.bytesRead));
    reply.removeHeader("content-length").header("content-encoding", "gzip");
    // The fastest level: the point is fewer bytes on a slow link, not the smallest file.
    // pipeline: a client that leaves destroys the gzip stream, and with it the file's.
    return reply.send(pipeline(stream, createGzip({ level: 1 }), () => undefined));
  } catch (err) {
    throw fsHttpError(err, "read", path);
  } finally {
    if (!handedOver) close(fd, () => undefined);
  }
}

export const downloadRoutes: FastifyPluginAsync = async (app) => {
  useJsonErrors(app);
  app.route({
    method: ["GET", "HEAD"],
    url: "/download/*",
    config: { access: { signed: { op: "read", path: signedDownloadPath } } },
    handler: download,
  });
};
