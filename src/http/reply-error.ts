/**
 * Errors of the plain file routes, as HTTP statuses with a JSON `{"message": ...}` body: clients
 * and people with curl see a reason, never a bare status or a stack.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import { describeFsError } from "../errors.js";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** An error from a file operation on `path`, with the status its errno calls for. */
export function fsHttpError(err: unknown, op: string, path: string): HttpError {
  if (err instanceof HttpError) return err;
  const { status, message } = describeFsError(err, op, path);
  return new HttpError(status, message);
}

export function sendError(reply: FastifyReply, err: HttpError): FastifyReply {
  return reply.code(err.status).header("content-type", "application/json; charset=utf-8").send({ message: err.message });
}

/**
 * Every error a route throws leaves as JSON. Errors fastify raises itself (a bad URL, a body it
 * cannot read) keep their 4xx status; anything else is ours and a 500.
 */
export function useJsonErrors(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    if (err instanceof HttpError) return sendError(reply, err);
    const status = typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, "file route failed");
    return sendError(reply, new HttpError(status, status === 500 ? `internal error: ${err.message}` : err.message));
  });
}
