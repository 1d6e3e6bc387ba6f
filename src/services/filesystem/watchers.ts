/**
 * Polled watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher): a watch whose events wait in a
 * bounded buffer until the client asks for them.
 *  - Ids are 128 random bits; anyone holding the access token and an id may poll or remove it.
 *  - Overflow: the buffer keeps the first `maxEvents` events and counts the rest. The poll that
 *    finds the buffer empty and a count pending fails with `resource_exhausted` ("events lost: N"),
 *    once; the watcher carries on, and later polls return later events.
 *  - A watcher nobody polls for `idleMs` is removed (its id becomes `not_found`), so abandoned
 *    watchers cannot pile up.
 *  - When the watched directory is removed (a REMOVE named ""), or watching fails, the remaining
 *    events are still returned; the poll after that reports the end and forgets the watcher.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import {
  CreateWatcherResponseSchema,
  GetWatcherEventsResponseSchema,
  RemoveWatcherResponseSchema,
  type CreateWatcherRequest,
  type CreateWatcherResponse,
  type FilesystemEvent,
  type GetWatcherEventsRequest,
  type GetWatcherEventsResponse,
  type RemoveWatcherRequest,
  type RemoveWatcherResponse,
} from "../../gen/sandboxagent/api_pb.js";
import { fileAccessFor, type FileAccess } from "../../user-fs/access.js";
import { callerOf } from "../caller.js";
import { EventBuffer } from "./event-buffer.js";
import { eventMessage } from "./event-entry.js";
import { resolveFor } from "./resolve.js";
import type { Watch, WatchEvent, WatchGroup } from "./watch.js";

export interface PolledWatcherOptions {
  readonly watches: WatchGroup;
  readonly maxEvents: number;
  readonly idleMs: number;
}

interface Polled {
  readonly path: string;
  /** The creator's access, when events carry their entries. */
  readonly entries: FileAccess | undefined;
  readonly buffer: EventBuffer<WatchEvent>;
  /** Both set once the watch is ready. */
  watch: Watch | undefined;
  idle: NodeJS.Timeout | undefined;
  ended: { error?: ConnectError } | undefined;
}

export class PolledWatchers {
  private readonly byId = new Map<string, Polled>();

  constructor(private readonly options: PolledWatcherOptions) {}

  /** `signal` stops the setup (see WatchGroup.open); once created, the watcher outlives the request. */
  /** `includeEntry`: events carry their entry (event-entry.ts), read as the creator when polled. */
  async create(access: FileAccess, path: string, recursive: boolean, includeEntry: boolean, signal?: AbortSignal): Promise<string> {
    const id = randomBytes(16).toString("base64url");
    const polled: Polled = {
      path,
      entries: includeEntry ? access : undefined,
      buffer: new EventBuffer(this.options.maxEvents),
      watch: undefined,
      idle: undefined,
      ended: undefined,
    };
    polled.watch = await this.options.watches.open(
      access,
      path,
      recursive,
      {
        events: (batch) => {
          for (const event of batch) polled.buffer.push(event);
        },
        ended: (error) => {
          polled.ended = { error };
        },
      },
      signal,
    );
    // Counted from readiness: the scan of a large tree is not idleness. unref: an abandoned
    // watcher must not keep a stopping process alive.
    polled.idle = setTimeout(() => void this.remove(id).catch(() => undefined), this.options.idleMs).unref();
    this.byId.set(id, polled);
    return id;
  }

  async take(id: string): Promise<FilesystemEvent[]> {
    const polled = this.find(id);
    polled.idle?.refresh();
    const events = polled.buffer.takeAll();
    if (events.length > 0) return Promise.all(events.map((event) => eventMessage(event, polled.path, polled.entries)));
    const lost = polled.buffer.takeLost();
    if (lost > 0) {
      throw new ConnectError(
        `events lost: ${lost} (more than ${polled.buffer.capacity} events arrived between two polls of watcher ${id}); ` +
          "later events follow in the next poll",
        Code.ResourceExhausted,
      );
    }
    if (polled.ended !== undefined) {
      void this.remove(id).catch(() => undefined);
      throw polled.ended.error ?? new ConnectError(`watcher ${id} ended: ${polled.path} was removed`, Code.NotFound);
    }
    return [];
  }

  async remove(id: string): Promise<void> {
    const polled = this.find(id);
    this.byId.delete(id);
    clearTimeout(polled.idle);
    await polled.watch?.close();
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.byId.keys()].map((id) => this.remove(id)));
  }

  private find(id: string): Polled {
    const polled = this.byId.get(id);
    if (polled === undefined) throw new ConnectError(`watcher ${JSON.stringify(id.slice(0, 64))} not found`, Code.NotFound);
    return polled;
  }
}

export function watcherHandlers(watchers: PolledWatchers) {
  return {
    async createWatcher(req: CreateWatcherRequest, ctx: HandlerContext): Promise<CreateWatcherResponse> {
      const user = callerOf(ctx);
      const path = resolveFor(req.path, user);
      return create(CreateWatcherResponseSchema, {
        watcherId: await watchers.create(fileAccessFor(user), path, req.recursive, req.includeEntry ?? false, ctx.signal),
      });
    },

    async getWatcherEvents(req: GetWatcherEventsRequest, ctx: HandlerContext): Promise<GetWatcherEventsResponse> {
      // Any caller with the token may poll: the unguessable id is the capability, as in envd.
      callerOf(ctx);
      const events = await watchers.take(req.watcherId);
      return create(GetWatcherEventsResponseSchema, { events });
    },

    async removeWatcher(req: RemoveWatcherRequest, ctx: HandlerContext): Promise<RemoveWatcherResponse> {
      callerOf(ctx);
      await watchers.remove(req.watcherId);
      return create(RemoveWatcherResponseSchema, {});
    },
  };
}
