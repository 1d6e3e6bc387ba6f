/**
 * A watch event as a message, with envd's `include_entry`: CREATE, WRITE and CHMOD events carry the
 * entry as it is when the event is sent, when the watch asked for it and the path still exists.
 */
import { create } from "@bufbuild/protobuf";
import { posix } from "node:path";
import { EventType, FilesystemEventSchema, type FilesystemEvent } from "../../gen/sandboxagent/api_pb.js";
import type { FileAccess } from "../../user-fs/access.js";
import type { WatchEvent } from "./coalesce.js";
import { entryInfo } from "./entry-info.js";

const WITH_ENTRY: ReadonlySet<EventType> = new Set([EventType.CREATE, EventType.WRITE, EventType.CHMOD]);

/** `entries` is the caller's access when the watch asked for entries, else undefined. */
export async function eventMessage(event: WatchEvent, base: string, entries: FileAccess | undefined): Promise<FilesystemEvent> {
  if (entries === undefined || !WITH_ENTRY.has(event.type)) return create(FilesystemEventSchema, event);
  const entry = await entryInfo(entries, posix.join(base, event.name)).catch(() => undefined);
  return create(FilesystemEventSchema, { ...event, entry });
}
