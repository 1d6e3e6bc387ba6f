/**
 * One translation of operating-system errors into what callers see: a Connect code for RPCs, an
 * HTTP status for the plain routes, and a message in the `op path: reason` shape Go tools print,
 * which the SDKs match on ("not found", "no such file or directory").
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { PathError } from "./paths.js";

interface Mapping {
  readonly code: Code;
  readonly status: number;
  readonly reason: string;
  /** Leading words of the message, e.g. "file not found" for ENOENT. */
  readonly kind: string;
}

const BY_ERRNO: Readonly<Record<string, Mapping>> = {
  ENOENT: { code: Code.NotFound, status: 404, reason: "no such file or directory", kind: "file not found" },
  EEXIST: { code: Code.AlreadyExists, status: 409, reason: "file exists", kind: "already exists" },
  ENOTDIR: { code: Code.InvalidArgument, status: 400, reason: "not a directory", kind: "invalid path" },
  EISDIR: { code: Code.InvalidArgument, status: 400, reason: "is a directory", kind: "invalid path" },
  ENOTEMPTY: { code: Code.FailedPrecondition, status: 409, reason: "directory not empty", kind: "cannot change" },
  EACCES: { code: Code.PermissionDenied, status: 403, reason: "permission denied", kind: "permission denied" },
  EPERM: { code: Code.PermissionDenied, status: 403, reason: "operation not permitted", kind: "permission denied" },
  EROFS: { code: Code.PermissionDenied, status: 403, reason: "read-only file system", kind: "permission denied" },
  ENOSPC: { code: Code.ResourceExhausted, status: 507, reason: "no space left on device", kind: "disk full" },
  EDQUOT: { code: Code.ResourceExhausted, status: 507, reason: "disk quota exceeded", kind: "disk full" },
  ELOOP: { code: Code.InvalidArgument, status: 400, reason: "too many levels of symbolic links", kind: "invalid path" },
  ENAMETOOLONG: { code: Code.InvalidArgument, status: 400, reason: "file name too long", kind: "invalid path" },
  EINVAL: { code: Code.InvalidArgument, status: 400, reason: "invalid argument", kind: "invalid argument" },
  EBUSY: { code: Code.FailedPrecondition, status: 409, reason: "device or resource busy", kind: "busy" },
  EMFILE: { code: Code.ResourceExhausted, status: 503, reason: "too many open files", kind: "out of resources" },
  ENFILE: { code: Code.ResourceExhausted, status: 503, reason: "too many open files in system", kind: "out of resources" },
};

export function errnoOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

export interface Described {
  readonly code: Code;
  readonly status: number;
  readonly message: string;
}

/**
 * Describes an error from a file operation. `op` and `path` name what was attempted, so the message
 * reads like `file not found: stat /x: no such file or directory`.
 */
export function describeFsError(err: unknown, op: string, path: string): Described {
  if (err instanceof PathError) return { code: Code.InvalidArgument, status: 400, message: `invalid path: ${err.message}` };
  if (err instanceof ConnectError) return { code: err.code, status: 500, message: err.rawMessage };
  const mapped = BY_ERRNO[errnoOf(err) ?? ""];
  if (mapped === undefined) {
    return { code: Code.Internal, status: 500, message: `${op} ${path}: ${(err as Error)?.message ?? String(err)}` };
  }
  return { code: mapped.code, status: mapped.status, message: `${mapped.kind}: ${op} ${path}: ${mapped.reason}` };
}

export function fsConnectError(err: unknown, op: string, path: string): ConnectError {
  if (err instanceof ConnectError) return err;
  const { code, message } = describeFsError(err, op, path);
  return new ConnectError(message, code, undefined, undefined, err);
}

/** Builds the error for a path the caller gave that cannot be used. */
export function invalidPath(err: unknown): ConnectError {
  return fsConnectError(err, "resolve", "");
}
