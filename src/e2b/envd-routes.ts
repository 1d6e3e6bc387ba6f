/**
 * envd's plain HTTP routes (docs/e2b.md), on the agent's one port beside its own:
 *   GET  /files   one file, as `GET /download` sends it but named by `?path=` and shown inline
 *   POST /files   multipart (one part per file; without `?path=` each part's file name is its
 *                 path) or a raw `application/octet-stream` body for `?path=`; gzip either way
 *   POST /init    the platform sets the token, sandbox env vars, default user and workdir
 *   GET  /envs    the sandbox env vars
 * The user is `?username=` (or the Basic header); a signed URL is envd's, over the raw query values.
 * Errors are envd's JSON, `{"code": <status>, "message": …}`.
 */
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { Config } from "../config.js";
import { inline } from "../http/disposition.js";
import { sendFile } from "../http/download.js";
import { isMultipartForm, receiveForm } from "../http/multipart.js";
import { fsHttpError, HttpError } from "../http/reply-error.js";
import { placeFiles } from "../http/upload-target.js";
import { probeFor, putInPlace, queryPath, receivePart, refuseSignedWithoutPath, refusingRestOnFailure, type Received } from "../http/upload.js";
import { resolvePath } from "../paths.js";
import { InitError, type InitRequest, type SandboxSettings } from "../sandbox-settings.js";
import { fileAccessFor } from "../user-fs/access.js";
import { metadataFromHeaders } from "../user-fs/metadata.js";

/** The envd release whose contract this agent serves; /init answers with it as envd does. */
export const ENVD_VERSION = "0.6.13";

export interface EnvdRouteOptions {
  readonly config: Config;
  readonly settings: SandboxSettings;
}

/** `?path=` exactly as sent: what envd signs (an absent path signs as ""). */
const rawQueryPath = (req: FastifyRequest): string | undefined => {
  const value = (req.query as Record<string, string | string[] | undefined> | undefined)?.path;
  return Array.isArray(value) ? value[0] : value;
};

function envdErrors(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    const status =
      err instanceof HttpError ? err.status : typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, "envd file route failed");
    return reply
      .code(status)
      .header("content-type", "application/json; charset=utf-8")
      .header("x-content-type-options", "nosniff")
      .send({ code: status, message: status === 500 && !(err instanceof HttpError) ? `internal error: ${err.message}` : err.message });
  });
}

/** envd's path rules: "" is the default workdir (else home), relative paths are under home. */
function filePath(req: FastifyRequest, settings: SandboxSettings): string {
  const given = rawQueryPath(req) ?? "";
  try {
    return resolvePath(given === "" ? (settings.defaultWorkdir ?? "") : given, req.caller);
  } catch (err) {
    throw new HttpError(400, `invalid path ${JSON.stringify(given.slice(0, 200))}: ${(err as Error).message}`);
  }
}

async function readFile(req: FastifyRequest, reply: FastifyReply, settings: SandboxSettings): Promise<FastifyReply> {
  return sendFile(req, reply, filePath(req, settings), { disposition: inline, gzip: true });
}

/** The body as sent, or decompressed: envd accepts identity and gzip. */
function bodyOf(req: FastifyRequest): Readable {
  const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  if (encoding === "identity" || encoding === "") return req.raw;
  if (encoding === "gzip") return req.raw.pipe(createGunzip());
  throw new HttpError(400, `unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 40))}: send identity or gzip`);
}

async function storeFiles(req: FastifyRequest, reply: FastifyReply, config: Config): Promise<FastifyReply> {
  refuseSignedWithoutPath(req);
  const path = queryPath(req);
  const metadata = metadataFromHeaders(req.headers);
  if (typeof metadata === "string") throw new HttpError(400, metadata);
  const contentType = req.headers["content-type"] ?? "";
  const body = bodyOf(req);
  let received: readonly Received[];
  if (/^\s*application\/octet-stream\s*(;|$)/i.test(contentType)) {
    if (path === undefined) throw new HttpError(400, "path query parameter is required for raw body upload");
    received = [await receivePart({ field: "file", fileName: undefined, stream: body }, new Map(), req)];
  } else if (isMultipartForm(contentType)) {
    received = (
      await receiveForm<Received>(req, {
        maxFileBytes: config.uploadMaxBytes,
        receive: (part, fieldsSoFar) => receivePart(part, fieldsSoFar, req),
        discard: (file) => file.file.discard(),
        source: body,
      })
    ).files;
  } else {
    throw new HttpError(400, `unsupported content type: ${contentType.slice(0, 100) || "none"} (send multipart/form-data or application/octet-stream)`);
  }
  const files = received.map((r) => r.file);
  try {
    if (files.length === 0) throw new HttpError(400, "the form has no file part");
    if (path !== undefined && files.length > 1) {
      throw new HttpError(
        400,
        `you cannot upload multiple files to the same path '${path}' in one upload request: leave out ?path= to name each file by its part's file name`,
      );
    }
    const access = fileAccessFor(req.caller);
    const placements = await placeFiles(
      { pathFields: [], queryPath: path, fileNames: path === undefined ? received.map((r) => r.fileName) : [undefined] },
      req.caller,
      probeFor(access),
    );
    // Every upload replaces the set: a file written without headers has none.
    for (const file of files) file.setMetadata(metadata);
    await putInPlace(req, files, placements, access);
    return reply
      .code(200)
      .header("content-type", "application/json")
      .send(
        placements.map(({ target }) => ({
          path: target,
          name: posix.basename(target),
          type: "file",
          ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
        })),
      );
  } catch (err) {
    throw fsHttpError(err, "write", path ?? "upload");
  } finally {
    await Promise.all(files.map((file) => file.discard()));
  }
}

async function init(req: FastifyRequest, reply: FastifyReply, settings: SandboxSettings): Promise<FastifyReply> {
  const body = (req.body ?? {}) as InitRequest;
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HttpError(400, "the body must be a JSON object");
  try {
    settings.apply(body);
  } catch (err) {
    if (err instanceof InitError) throw new HttpError(400, err.message);
    throw err;
  }
  req.log.info({ user: settings.defaultUser, workdir: settings.defaultWorkdir, envVars: Object.keys(settings.envVars).length }, "initialised by POST /init");
  return reply.code(204).header("x-envd-version", ENVD_VERSION).header("cache-control", "no-store").send();
}

export const envdRoutes: FastifyPluginAsync<EnvdRouteOptions> = async (app, { config, settings }) => {
  envdErrors(app);
  app.route({
    method: ["GET", "HEAD"],
    url: "/files",
    config: { access: { signed: { op: "read", path: rawQueryPath, envd: true } } },
    handler: (req, reply) => readFile(req, reply, settings),
  });
  app.get("/envs", async (_req, reply) => reply.header("cache-control", "no-store").send(settings.envVars));
  app.post("/init", { config: { access: { init: true } }, bodyLimit: 1024 * 1024 }, (req, reply) => init(req, reply, settings));

  await app.register(async (uploads) => {
    // The handler streams the body itself, whatever its type says (see http/upload.ts).
    uploads.removeAllContentTypeParsers();
    uploads.addContentTypeParser("*", (_req, _payload, done) => done(null));
    uploads.route({
      method: "POST",
      url: "/files",
      config: { access: { signed: { op: "write", path: rawQueryPath, envd: true } } },
      handler: refusingRestOnFailure((req, reply) => storeFiles(req, reply, config)),
    });
  });
};
