/**
 * Whose processes a request may act on. A process belongs to the Linux user it runs as, which is
 * the caller's user at Start (for an agent that cannot switch users, the agent's own). A caller
 * sees and controls only processes of its own user, root all of them: the rule execution contexts
 * follow too (mayControl). Someone else's process is answered as if it did not exist (table.ts).
 */
import type { HandlerContext } from "@connectrpc/connect";
import { effectiveUser } from "../../user-spawn.js";
import type { User } from "../../users.js";
import { callerOf } from "../caller.js";

/** The user a request acts as: the one its processes run as, and the one checked against an owner. */
export function actingUser(ctx: HandlerContext): User {
  return effectiveUser(callerOf(ctx));
}
