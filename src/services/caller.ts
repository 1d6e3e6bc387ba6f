/**
 * Who is calling an RPC: checked once by an interceptor, then read by every handler through
 * `callerOf(ctx)`. Handlers never look at auth headers themselves.
 */
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { AuthError, checkAccessToken, resolveUser, userNameFromHeaders } from "../auth.js";
import type { User } from "../users.js";

const callerKey = createContextKey<User | undefined>(undefined, { description: "the calling Linux user" });

export function callerOf(ctx: HandlerContext): User {
  const user = ctx.values.get(callerKey);
  // The interceptor runs before every handler; reaching this means a route was registered without it.
  if (user === undefined) throw new ConnectError("caller not authenticated", Code.Internal);
  return user;
}

export function authInterceptor(options: { readonly token: string; readonly defaultUser: string }): Interceptor {
  return (next) => async (req) => {
    if (!checkAccessToken(req.header.get("x-access-token") ?? undefined, options.token)) {
      throw new ConnectError("missing or invalid access token", Code.Unauthenticated);
    }
    try {
      const name = userNameFromHeaders((header) => req.header.get(header) ?? undefined, options.defaultUser);
      req.contextValues.set(callerKey, resolveUser(name));
    } catch (err) {
      if (err instanceof AuthError) throw new ConnectError(err.message, Code.Unauthenticated);
      throw err;
    }
    return next(req);
  };
}
