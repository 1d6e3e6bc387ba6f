/**
 * Access control for the plain HTTP routes, declared once as an onRequest hook. A route says in
 * its config whether it is public, or which signed-URL operation may stand in for the token.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { AuthError, checkAccessToken, resolveUser, userNameFromHeaders, verifySignedUrl, type Operation } from "../auth.js";
import type { User } from "../users.js";

export interface RouteAccess {
  /** No token needed (health). */
  readonly public?: boolean;
  /** A signed URL for this operation is accepted instead of the token; `path` is what was signed. */
  readonly signed?: { readonly op: Operation; readonly path: (req: FastifyRequest) => string | undefined };
}

declare module "fastify" {
  interface FastifyRequest {
    /** The Linux user the request acts as; set by the access hook on every non-public route. */
    caller: User;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

export interface AccessOptions {
  readonly token: string;
  readonly defaultUser: string;
  readonly signedUrlMaxSeconds: number;
}

type Query = Record<string, string | string[] | undefined>;

const single = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

export function unauthorized(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(401).header("content-type", "application/json").send({ message, code: "unauthenticated" });
}

export function accessHook(options: AccessOptions) {
  return async function checkAccess(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const access = req.routeOptions.config.access ?? {};
    if (access.public) return;
    const query = (req.query ?? {}) as Query;
    const signatureParam = single(query.signature);
    try {
      let userName: string;
      if (access.signed && signatureParam !== undefined) {
        userName = verifySignedUrl(
          { signature: signatureParam, expiration: single(query.signature_expiration), username: single(query.username) },
          access.signed.path(req),
          access.signed.op,
          options.token,
          options.defaultUser,
          options.signedUrlMaxSeconds,
        );
      } else if (checkAccessToken(single(req.headers["x-access-token"]), options.token)) {
        userName = userNameFromHeaders((name) => req.headers[name], options.defaultUser);
      } else {
        throw new AuthError("missing or invalid access token");
      }
      req.caller = resolveUser(userName);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      await unauthorized(reply, err.message);
    }
  };
}
