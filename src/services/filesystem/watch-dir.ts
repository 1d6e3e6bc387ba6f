import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  WatchDirResponseSchema,
  WatchDirResponse_KeepAliveSchema,
  WatchDirResponse_StartEventSchema,
  type WatchDirRequest,
  type WatchDirResponse,
} from "../../gen/sandboxagent/api_pb.js";
import { fileAccessFor } from "../../user-fs/access.js";
import { callerOf } from "../caller.js";
import { KEEPALIVE_HEADER, keepaliveIntervalMs } from "../keepalive.js";
import { EventBuffer } from "./event-buffer.js";
import { eventMessage } from "./event-entry.js";
import { resolveFor } from "./resolve.js";
import type { WatchEvent, WatchGroup } from "./watch.js";

export interface WatchDirOptions {
  readonly watches: WatchGroup;
  /** Events held for a client that reads slower than they happen. */
  readonly maxQueued: number;
  /** How long a stream that names no deadline and no keepalive interval lasts (0: for ever); see below. */
  readonly defaultTimeoutMs: number;
}

/**
 * The ScaleBox SDK ends a watch by aborting its fetch at its request timeout (30 s by default),
 * and sends neither a deadline nor a keepalive interval. Node's fetch (undici) holds the abort
 * controller of a request weakly: once a garbage collection has run, the abort no longer reaches
 * the response, and the SDK's bundled connect-web reads on (keepalives included) for ever, its
 * `for await` never ending. The agent cannot see that abort, so a stream that looks like the
 * SDK's ends at the SDK's own default with `deadline_exceeded`, which the SDK throws as its
 * timeout. Clients that want longer watches name a deadline or a keepalive interval.
 * Upstream: the abort lost to garbage collection is undici's, https://github.com/nodejs/node/issues/55428
 * (fixed for redirect: "error" in https://github.com/nodejs/undici/pull/4750; the general fix,
 * https://github.com/nodejs/undici/pull/4984, is open; Node 20's bundled undici has neither).
 */
function unboundedLifetimeMs(ctx: HandlerContext, defaultTimeoutMs: number): number | undefined {
  if (defaultTimeoutMs === 0 || ctx.timeoutMs() !== undefined || ctx.requestHeader.has(KEEPALIVE_HEADER)) return undefined;
  return defaultTimeoutMs;
}

/**
 * WatchDir: `start` as soon as the directory is watched, then its events, with `keepalive` while
 * idle at the client's `Keepalive-Ping-Interval` (seconds). Errors in the request (missing path,
 * a file) are thrown before the first message. The watch ends when the client goes away or its
 * deadline passes (`deadline_exceeded`, even while a large tree is still being set up). A
 * client too slow to take `maxQueued` events gets every event up to that point, then the stream
 * ends with `resource_exhausted` saying how many were dropped: it must rescan and watch again.
 */
export function watchDirHandler(options: WatchDirOptions) {
  return async function* watchDir(req: WatchDirRequest, ctx: HandlerContext): AsyncGenerator<WatchDirResponse> {
    const user = callerOf(ctx);
    const path = resolveFor(req.path, user);
    const access = fileAccessFor(user);

    const buffer = new EventBuffer<WatchEvent>(options.maxQueued);
    let ended: { error?: ConnectError } | undefined;
    const watch = await options.watches.open(
      access,
      path,
      req.recursive,
      {
        events: (batch) => {
          for (const event of batch) buffer.push(event);
        },
        ended: (error) => {
          ended = { error };
          buffer.wake();
        },
      },
      ctx.signal,
    );

    let keepaliveDue = false;
    const keepalive = setInterval(() => {
      keepaliveDue = true;
      buffer.wake();
    }, keepaliveIntervalMs(ctx.requestHeader));
    const onAbort = (): void => buffer.wake();
    ctx.signal.addEventListener("abort", onAbort);
    const lifetimeMs = unboundedLifetimeMs(ctx, options.defaultTimeoutMs);
    const lifetime =
      lifetimeMs === undefined
        ? undefined
        : setTimeout(() => {
            ended ??= { error: new ConnectError(`watch ended after ${lifetimeMs} ms: the request named no deadline`, Code.DeadlineExceeded) };
            buffer.wake();
          }, lifetimeMs);
    try {
      yield message({ case: "start", value: create(WatchDirResponse_StartEventSchema) });
      while (!ctx.signal.aborted) {
        const event = buffer.shift();
        if (event !== undefined) {
          yield message({ case: "filesystem", value: await eventMessage(event, path, req.includeEntry ? access : undefined) });
          continue;
        }
        const lost = buffer.takeLost();
        if (lost > 0) {
          throw new ConnectError(`events lost: ${lost} (the client fell more than ${buffer.capacity} events behind); watch again`, Code.ResourceExhausted);
        }
        if (ended !== undefined) {
          if (ended.error !== undefined) throw ended.error;
          return;
        }
        if (keepaliveDue) {
          keepaliveDue = false;
          yield message({ case: "keepalive", value: create(WatchDirResponse_KeepAliveSchema) });
          continue;
        }
        await buffer.changed();
      }
      // The deadline passed or the client left: not a normal end, whoever still listens.
      throw ConnectError.from(ctx.signal.reason, Code.Canceled);
    } finally {
      clearInterval(keepalive);
      clearTimeout(lifetime);
      ctx.signal.removeEventListener("abort", onAbort);
      await watch.close();
    }
  };
}

function message(event: WatchDirResponse["event"]): WatchDirResponse {
  return create(WatchDirResponseSchema, { event });
}
