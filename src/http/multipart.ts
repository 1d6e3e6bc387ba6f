/**
 * Reads a multipart/form-data request body with busboy, handing each file part to the caller as
 * a stream while it arrives. The form either completes (every file part received) or fails as a
 * whole: a malformed body, a part over the size limit, a client that went away, or a file the
 * caller could not store. On failure every received file is discarded before the promise rejects.
 */
import busboy from "busboy";
import type { FastifyRequest } from "fastify";
import type { Readable } from "node:stream";
import { HttpError } from "./reply-error.js";

export interface FilePart {
  /** Form field name of the part (any name is accepted, `file` by convention). */
  readonly field: string;
  /** The part's file name, exactly as sent (directories included: it is a path here). */
  readonly fileName: string | undefined;
  readonly stream: Readable;
}

export interface Form<T> {
  /** Text fields by name, values in arrival order. */
  readonly fields: ReadonlyMap<string, readonly string[]>;
  /** What `receive` returned for each file part, in order. */
  readonly files: readonly T[];
}

export interface FormOptions<T> {
  readonly maxFileBytes: number;
  /**
   * Stores one file part and must consume its stream. It sees the fields that came before the
   * part. If it fails, it cleans up after itself; the form then fails.
   */
  readonly receive: (part: FilePart, fieldsSoFar: ReadonlyMap<string, readonly string[]>) => Promise<T>;
  /** Undoes a received file when the form fails after it. */
  readonly discard: (file: T) => Promise<void>;
  /** The body, when not the request's own bytes (decompressed, for one). */
  readonly source?: Readable;
}

/** Paths are what fields carry here; PATH_MAX bounds them, so larger fields are not ours. */
const MAX_FIELD_BYTES = 8 * 1024;
const MAX_FIELDS = 1000;
const MAX_FILES = 10_000;

/** Whether the request claims to be multipart/form-data (busboy then checks the boundary). */
export function isMultipartForm(contentType: string | undefined): boolean {
  return contentType !== undefined && /^\s*multipart\/form-data\s*(;|$)/i.test(contentType);
}

function asHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  return new HttpError(400, `invalid multipart body: ${(err as Error)?.message ?? String(err)}`);
}

export function receiveForm<T>(req: FastifyRequest, options: FormOptions<T>): Promise<Form<T>> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers,
      // The file name is the target path: keep its directories.
      preservePath: true,
      // Browsers and undici send file names as raw UTF-8, not latin1.
      defParamCharset: "utf8",
      limits: {
        // busboy flags a file as over the limit when it *reaches* it: one more byte lets a file of
        // exactly maxFileBytes through.
        fileSize: options.maxFileBytes + 1,
        fieldSize: MAX_FIELD_BYTES,
        fields: MAX_FIELDS,
        files: MAX_FILES,
      },
    });
  } catch (err) {
    return Promise.reject(asHttpError(err));
  }

  const raw = req.raw;
  const body = options.source ?? raw;
  const fields = new Map<string, string[]>();
  const received: Promise<T>[] = [];
  let failure: HttpError | undefined;
  let settling = false;

  return new Promise<Form<T>>((resolve, reject) => {
    /** Waits for every file part to finish one way or the other, then decides. */
    const settle = async (): Promise<void> => {
      if (settling) return;
      settling = true;
      const results = await Promise.allSettled(received);
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      failure ??= rejected === undefined ? undefined : asHttpError(rejected.reason);
      if (failure === undefined) {
        resolve({ fields, files: results.map((r) => (r as PromiseFulfilledResult<T>).value) });
        return;
      }
      await Promise.all(results.map((r) => (r.status === "fulfilled" ? options.discard(r.value).catch(() => undefined) : undefined)));
      reject(failure);
    };

    const fail = (err: HttpError): void => {
      if (failure !== undefined) return;
      failure = err;
      body.unpipe(parser);
      // Most failures are noticed inside busboy's own callbacks, which go on using the parser
      // after they return: destroy it once they have. That ends the part being received with an
      // error, which ends its `receive`.
      process.nextTick(() => {
        parser.destroy();
        void settle();
      });
    };

    parser.on("file", (field, stream, info) => {
      // `receive` attaches its consumer later; until then a destroyed part must not throw.
      stream.on("error", () => undefined);
      if (failure !== undefined) {
        stream.resume();
        return;
      }
      stream.once("limit", () =>
        fail(new HttpError(413, `file part ${JSON.stringify(info.filename ?? field)} is larger than the upload limit of ${options.maxFileBytes} bytes`)),
      );
      const done = options.receive({ field, fileName: info.filename, stream }, fields);
      received.push(done);
      done.catch((err: unknown) => fail(asHttpError(err)));
    });
    parser.on("field", (name, value, info) => {
      if (info.valueTruncated) {
        fail(new HttpError(400, `form field ${JSON.stringify(name)} is longer than ${MAX_FIELD_BYTES} bytes`));
        return;
      }
      const values = fields.get(name) ?? [];
      values.push(value);
      fields.set(name, values);
    });
    parser.once("fieldsLimit", () => fail(new HttpError(400, `the form has more than ${MAX_FIELDS} fields`)));
    parser.once("filesLimit", () => fail(new HttpError(400, `the form has more than ${MAX_FILES} files`)));
    parser.on("error", (err: unknown) => fail(asHttpError(err)));
    parser.once("close", () => {
      if (failure === undefined) void settle();
    });

    // A client that disconnects mid-body never ends the pipe: notice it here.
    raw.once("close", () => {
      if (!raw.complete) fail(new HttpError(400, "upload interrupted: the client closed the connection"));
    });
    raw.on("error", (err) => fail(new HttpError(400, `upload interrupted: ${err.message}`)));
    if (body !== raw) body.on("error", (err) => fail(new HttpError(400, `invalid request body: ${err.message}`)));
    body.pipe(parser);
  });
}
