/**
 * envd's Connect services, `filesystem.Filesystem` and `process.Process`, served by the agent's own
 * implementations (bridge.ts). Where envd's SDK depends on a behaviour the agent also has (stdin
 * absent means true, include_entry, Remove of a missing path, already_exists from MakeDir), the
 * agent's services do it for both faces; where the agent does better (output replayed to a late
 * Connect, kill and time limit reaching the whole process group, clearer input errors), both
 * faces get it.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { EntryInfo, ListDirResponse, WatchDirResponse } from "../gen/filesystem/filesystem_pb.js";
import { Filesystem as EnvdFilesystem } from "../gen/filesystem/filesystem_pb.js";
import { Process as EnvdProcess } from "../gen/process/process_pb.js";
import { Filesystem, Process } from "../gen/sandboxagent/api_pb.js";
import { callerOf } from "../services/caller.js";
import { fileAccessFor } from "../user-fs/access.js";
import { bridgeService, type Finish } from "./bridge.js";

export { EnvdFilesystem, EnvdProcess };

export function envdFilesystem(impl: ServiceImpl<typeof Filesystem>): ServiceImpl<typeof EnvdFilesystem> {
  const one =
    (pick: (response: MessageShape<DescMessage>) => EntryInfo | undefined): Finish =>
    async (response, ctx) => {
      const entry = pick(response);
      if (entry !== undefined) await withMetadata([entry], ctx);
    };
  const single = one((response) => (response as { entry?: EntryInfo }).entry);
  return bridgeService(EnvdFilesystem, Filesystem, impl, {
    stat: single,
    makeDir: single,
    move: single,
    listDir: async (response, ctx) => withMetadata((response as ListDirResponse).entries, ctx),
    watchDir: one((response) => {
      const event = (response as WatchDirResponse).event;
      return event.case === "filesystem" ? event.value.entry : undefined;
    }),
  });
}

/**
 * envd's entries carry the file's metadata (its `user.e2b.*` attributes), read as the caller; the
 * agent's own face has no such field, so only this face pays the reads.
 */
async function withMetadata(entries: readonly EntryInfo[], ctx: HandlerContext): Promise<void> {
  const access = fileAccessFor(callerOf(ctx));
  await Promise.all(
    entries.map(async (entry) => {
      const metadata = await access.readMetadata(entry.path).catch(() => ({}));
      if (Object.keys(metadata).length > 0) entry.metadata = metadata;
    }),
  );
}

export function envdProcess(impl: ServiceImpl<typeof Process>): ServiceImpl<typeof EnvdProcess> {
  return bridgeService(EnvdProcess, Process, impl);
}
