/**
 * Who is calling an RPC: decided once by the gate (src/gate.ts) before the request's body is read,
 * handed to the handlers as a context value, and read by every handler through `callerOf(ctx)`.
 * Handlers never look at auth headers themselves.
 */
import { Code, ConnectError, createContextKey, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { User } from "../users.js";

const callerKey = createContextKey<User | undefined>(undefined, { description: "the calling Linux user" });

export function callerOf(ctx: HandlerContext): User {
  const user = ctx.values.get(callerKey);
  // The gate runs before every RPC; reaching this means a route was served without it.
  if (user === undefined) throw new ConnectError("caller not authenticated", Code.Internal);
  return user;
}

/** The context values an RPC starts with: the caller the gate let in. */
export function callerValues(user: User | undefined): ContextValues {
  return createContextValues().set(callerKey, user);
}
