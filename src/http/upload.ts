/**
 * `POST /upload`: multipart/form-data, streamed to temporary files beside their targets and
 * renamed into place only when the whole form has arrived, because the SDK sends the `path` field
 * after the file bytes. Target rules: upload-target.ts; atomic replacement: staging.ts.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { posix } from "node:path";
import type { Config } from "../config.js";
import { errnoOf } from "../errors.js";
import { fileAccessFor, type FileAccess, type FileStats } from "../user-fs/access.js";
import { anchorForWriting, nearestDirectory, type Anchor, type DirectoryHandle } from "../user-fs/protected-path.js";
import { isMultipartForm, receiveForm, type FilePart } from "./multipart.js";
import { fsHttpError, HttpError, useJsonErrors } from "./reply-error.js";
import { StagedFile } from "./staging.js";
import { checkSignedScope, placeFiles, tentativeTarget, type Placement, type Probe } from "./upload-target.js";

/** Mode of a new file (the usual 0666 under the usual 022 umask); a replaced file keeps its own. */
const NEW_FILE_MODE = 0o644;

export interface Received {
  readonly fileName: string | undefined;
  readonly file: StagedFile;
}

type Query = Record<string, string | string[] | undefined>;

function queryValue(req: FastifyRequest, name: string): string | undefined {
  const value = (req.query as Query | undefined)?.[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `?path=` as the SDK signs it; an empty value means no path, as in `signaturePath`. */
export function queryPath(req: FastifyRequest): string | undefined {
  const path = queryValue(req, "path");
  return path === "" ? undefined : path;
}

/** Authorised by a signed URL, which allows writing its own path only (see access.ts). */
const isSigned = (req: FastifyRequest): boolean => queryValue(req, "signature") !== undefined;

/** What is at a path, as the caller sees it. */
export const probeFor =
  (access: FileAccess): Probe =>
  async (path) => {
    try {
      return (await access.stat(path)).isDirectory() ? "directory" : "other";
    } catch {
      return "missing";
    }
  };

async function lstatOrMissing(access: FileAccess, path: string, shown: string): Promise<FileStats | undefined> {
  try {
    return await access.lstat(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw fsHttpError(err, "stat", shown);
  }
}

/**
 * Where writing `path` lands, its directory made and held open: writing to a symlink writes to
 * the file it points to (as writing in place would), even when that file does not exist yet,
 * unless the link is one the caller must not follow (see protected-path.ts).
 */
async function writeTarget(access: FileAccess, path: string): Promise<Anchor> {
  try {
    return await anchorForWriting(access, path, { followLast: true, makeParents: true });
  } catch (err) {
    throw fsHttpError(err, "open", path);
  }
}

/** Where a part can be staged now: the closest directory that exists on the way to its target. */
async function stagingDirectory(access: FileAccess, path: string): Promise<DirectoryHandle> {
  try {
    return await nearestDirectory(access, path);
  } catch (err) {
    throw fsHttpError(err, "open", path);
  }
}

function firstNonEmpty(values: readonly string[] | undefined): string | undefined {
  return values?.find((value) => value !== "");
}

/** Stages one file part beside where it will most likely go, which is where it goes for the SDK. */
export async function receivePart(part: FilePart, fieldsSoFar: ReadonlyMap<string, readonly string[]>, req: FastifyRequest): Promise<Received> {
  const caller = req.caller;
  const access = fileAccessFor(caller);
  const known = firstNonEmpty(fieldsSoFar.get("path")) ?? queryPath(req);
  const guess = await tentativeTarget(known, part.fileName, caller, probeFor(access));
  let file: StagedFile;
  try {
    // A guess outside a signed URL's path dooms the form (a path field outside it always wins):
    // refuse now rather than stage the bytes there, where the URL never allowed writing.
    if (guess !== undefined && isSigned(req)) checkSignedScope([{ target: guess, shown: guess }], queryPath(req) ?? "/", caller);
    const dir = await stagingDirectory(access, guess === undefined ? caller.home : posix.dirname(guess));
    file = await StagedFile.create(access, dir, posix.basename(guess ?? part.fileName ?? "file"));
  } catch (err) {
    part.stream.resume();
    throw err;
  }
  try {
    await file.fill(part.stream, guess ?? part.fileName ?? "upload");
    req.server.metrics.fileBytes.inc({ direction: "upload" }, file.size);
  } catch (err) {
    await file.discard();
    throw err;
  }
  return { fileName: part.fileName, file };
}

/**
 * Makes the target's directory (as the caller: new directories are the caller's), moves the
 * staged file there and gives it its final mode. The staged file takes the target's directory
 * handle over.
 */
async function prepare(file: StagedFile, placement: Placement, access: FileAccess): Promise<Anchor> {
  const target = await writeTarget(access, placement.target);
  let existing: FileStats | undefined;
  try {
    existing = await lstatOrMissing(access, target.at, target.shown);
    if (existing?.isDirectory()) throw new HttpError(409, `cannot write ${target.shown}: it is a directory`);
    if (existing !== undefined && !existing.isFile()) throw new HttpError(409, `cannot write ${target.shown}: it is not a regular file`);
    await file.moveInto(target);
  } catch (err) {
    // Not taken over by the staged file: closed here, and never named again.
    await target.close();
    throw err;
  }
  await file.finish(existing === undefined ? NEW_FILE_MODE : existing.mode & 0o777);
  return target;
}

type UploadHandler = (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/** `store`, which refuses the rest of the body when it fails before reading all of it (refuseRestOfBody). */
export function refusingRestOnFailure(store: UploadHandler): UploadHandler {
  return async (req, reply) => {
    try {
      return await store(req, reply);
    } catch (err) {
      if (!req.raw.complete) refuseRestOfBody(req, reply);
      throw err;
    }
  };
}

/**
 * Signed for no path (the SDKs sign "/" then), an upload URL would let its holder write anywhere
 * the signed user can: it allows writing nothing.
 */
export function refuseSignedWithoutPath(req: FastifyRequest): void {
  if (isSigned(req) && queryPath(req) === undefined) {
    throw new HttpError(403, "this signed URL names no path, so it allows writing nothing: sign the path the upload may write");
  }
}

/**
 * Moves every staged file to its placement, within a signed URL's scope. Everything that can fail
 * happens before the first rename, so a bad file in a form of several leaves all targets as they were.
 */
export async function putInPlace(req: FastifyRequest, files: readonly StagedFile[], placements: readonly Placement[], access: FileAccess): Promise<void> {
  // A signed URL authorises its own path only; its query path is what was signed.
  if (isSigned(req)) checkSignedScope(placements, queryPath(req) ?? "/", req.caller);
  const targets: Anchor[] = [];
  for (const [i, placement] of placements.entries()) targets.push(await prepare(files[i]!, placement, access));
  for (const [i, target] of targets.entries()) await files[i]!.commit(target);
}

/**
 * The rest of an unread body can be large: stop the client sending it rather than drain it.
 * HTTP/1.1 closes the connection after the answer; HTTP/2 ends just the stream once the answer is
 * out, for every request (net/one-port.ts).
 */
function refuseRestOfBody(req: FastifyRequest, reply: FastifyReply): void {
  if (req.raw.httpVersionMajor === 1) reply.header("connection", "close");
}

async function storeForm(req: FastifyRequest, reply: FastifyReply, config: Config): Promise<FastifyReply> {
  refuseSignedWithoutPath(req);
  const contentType = req.headers["content-type"];
  if (!isMultipartForm(contentType)) {
    throw new HttpError(400, `expected a multipart/form-data body with a file part, got ${contentType?.slice(0, 100) ?? "no Content-Type"}`);
  }
  const form = await receiveForm<Received>(req, {
    maxFileBytes: config.uploadMaxBytes,
    receive: (part, fieldsSoFar) => receivePart(part, fieldsSoFar, req),
    discard: (received) => received.file.discard(),
  });
  const files = form.files.map((received) => received.file);
  try {
    const pathFields = (form.fields.get("path") ?? []).filter((value) => value !== "");
    const access = fileAccessFor(req.caller);
    const placements = await placeFiles(
      { pathFields, queryPath: queryPath(req), fileNames: form.files.map((received) => received.fileName) },
      req.caller,
      probeFor(access),
    );
    await putInPlace(req, files, placements, access);

    const entries = placements.map(({ target, shown }) => ({ name: posix.basename(target), type: "file", path: shown }));
    return reply.code(200).send(entries.length === 1 && pathFields.length <= 1 ? entries[0] : entries);
  } finally {
    await Promise.all(files.map((file) => file.discard()));
  }
}

export const uploadRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  useJsonErrors(app);
  // The handler streams the body itself: no parser may read it first, and any content type
  // reaches the handler so that it can say what is wrong. (This plugin's context only.)
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));

  app.route({
    method: "POST",
    url: "/upload",
    config: { access: { signed: { op: "write", path: queryPath } } },
    handler: refusingRestOnFailure((req, reply) => storeForm(req, reply, config)),
  });
};
