/**
 * Where the files of one upload go. The rules (docs/wire-contract.md, plus what it leaves open):
 * - the target is the form field `path`, else the query `path`, else the part's file name, each
 *   resolved for the caller (`~` and relative paths against the home directory);
 * - a target that is an existing directory, or ends with `/`, receives the file under the part's
 *   base name (unless the file name is that directory itself: then it is an error);
 * - several file parts: with as many `path` fields as files, the i-th field names the i-th file
 *   (the SDK's write() repeated in one form); with one `path`, that path is a directory (created
 *   when missing) and each file name is a path inside it; with none, each file name is resolved on
 *   its own.
 */
import { posix } from "node:path";
import { resolvePath } from "../paths.js";
import type { User } from "../users.js";
import { HttpError } from "./reply-error.js";

export interface Placement {
  /** Absolute path the file is written to. */
  readonly target: string;
  /** The path as the client gave it, for the reply (the SDK compares it with what it asked for). */
  readonly shown: string;
}

export interface UploadRequest {
  /** `path` form fields, in the order they came. */
  readonly pathFields: readonly string[];
  readonly queryPath: string | undefined;
  /** The file name of each file part, in order (undefined when a part had none). */
  readonly fileNames: readonly (string | undefined)[];
}

/** What is at a path now (following symlinks). */
export type Probe = (path: string) => Promise<"directory" | "other" | "missing">;

function resolve(path: string, caller: User): string {
  try {
    return resolvePath(path, caller);
  } catch (err) {
    throw new HttpError(400, `invalid path ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

function resolveOrUndefined(path: string, caller: User): string | undefined {
  try {
    return resolvePath(path, caller);
  } catch {
    return undefined;
  }
}

function baseNameOf(fileName: string | undefined, dir: string): string {
  const name = fileName === undefined ? "" : posix.basename(fileName);
  if (name === "" || name === "." || name === "..") {
    throw new HttpError(400, `${dir} is a directory: give the file part a file name to store it under`);
  }
  return name;
}

/** One file: `given` is the path the client asked for, when it asked for one. */
async function placeOne(given: string | undefined, fileName: string | undefined, caller: User, probe: Probe): Promise<Placement> {
  if (given === undefined) {
    if (fileName === undefined || fileName === "") {
      throw new HttpError(400, "no target path: send a `path` form field, a `?path=` query parameter or a file name");
    }
    // The file name is the target itself: no directory guessing, a directory there is an error later.
    return { target: resolve(fileName, caller), shown: fileName };
  }
  const target = resolve(given, caller);
  if (given.endsWith("/") || (await probe(target)) === "directory") {
    // The SDK names the file by its full path twice: that path being a directory is an error,
    // not a request to write <dir>/<basename of dir>.
    if (fileName !== undefined && fileName !== "" && resolveOrUndefined(fileName, caller) === target) {
      throw new HttpError(409, `cannot write ${target}: it is a directory`);
    }
    const name = baseNameOf(fileName, target);
    // Resolved like any other path: the name may hold a NUL byte, or make the path too long.
    return { target: resolve(posix.join(target, name), caller), shown: posix.join(given, name) };
  }
  return { target, shown: given };
}

/** A file name inside the directory `given`; absolute and `~` names stand on their own. */
function placeInside(given: string, dir: string, fileName: string | undefined, caller: User): Placement {
  if (fileName === undefined || fileName === "") {
    throw new HttpError(400, `several files were sent to ${given}: every file part needs a file name`);
  }
  if (fileName.startsWith("/") || fileName.startsWith("~")) return { target: resolve(fileName, caller), shown: fileName };
  return { target: resolve(posix.join(dir, fileName), caller), shown: posix.join(given, fileName) };
}

export async function placeFiles(req: UploadRequest, caller: User, probe: Probe): Promise<Placement[]> {
  const { pathFields, fileNames } = req;
  if (fileNames.length === 0) throw new HttpError(400, "the form has no file part");
  if (pathFields.length > 1) {
    if (pathFields.length !== fileNames.length) {
      throw new HttpError(400, `ambiguous form: ${pathFields.length} path fields for ${fileNames.length} files`);
    }
    return Promise.all(fileNames.map((name, i) => placeOne(pathFields[i], name, caller, probe)));
  }
  const given = pathFields[0] ?? req.queryPath;
  if (fileNames.length === 1) return [await placeOne(given, fileNames[0], caller, probe)];
  if (given === undefined) return Promise.all(fileNames.map((name) => placeOne(undefined, name, caller, probe)));
  const dir = resolve(given, caller);
  if ((await probe(dir)) === "other") {
    throw new HttpError(409, `several files were sent to ${given}, which is not a directory`);
  }
  return fileNames.map((name) => placeInside(given, dir, name, caller));
}

/**
 * Where a file part can be written while the form is still arriving: the `path` field may come
 * after the bytes, so this is a best guess from what is known so far, good for choosing the
 * directory of the temporary file. undefined when nothing names a target yet.
 */
export async function tentativeTarget(knownPath: string | undefined, fileName: string | undefined, caller: User, probe: Probe): Promise<string | undefined> {
  try {
    return (await placeOne(knownPath, fileName, caller, probe)).target;
  } catch {
    const named = knownPath ?? fileName;
    return named === undefined || named === "" ? undefined : resolveOrUndefined(named, caller);
  }
}

/** With a signed URL for a path, files may only go to that path or, when it is a directory, inside it. */
export function checkSignedScope(placements: readonly Placement[], signedPath: string, caller: User): void {
  const allowed = resolve(signedPath, caller);
  for (const { target } of placements) {
    if (target !== allowed && !target.startsWith(allowed === "/" ? "/" : `${allowed}/`)) {
      throw new HttpError(403, `this signed URL only allows writing ${signedPath}, not ${target}`);
    }
  }
}
