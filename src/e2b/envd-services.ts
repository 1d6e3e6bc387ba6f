/**
 * envd's Connect services, `filesystem.Filesystem` and `process.Process`, served by the agent's own
 * implementations (bridge.ts). Where envd's SDK depends on a behaviour the agent also has (stdin
 * absent means true, include_entry, Remove of a missing path, already_exists from MakeDir), the
 * agent's services do it for both faces; where the agent does better (output replayed to a late
 * Connect, kill and time limit reaching the whole process group, clearer input errors), both
 * faces get it.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { Filesystem as EnvdFilesystem } from "../gen/filesystem/filesystem_pb.js";
import { Process as EnvdProcess } from "../gen/process/process_pb.js";
import { Filesystem, Process } from "../gen/sandboxagent/api_pb.js";
import { bridgeService } from "./bridge.js";

export { EnvdFilesystem, EnvdProcess };

export function envdFilesystem(impl: ServiceImpl<typeof Filesystem>): ServiceImpl<typeof EnvdFilesystem> {
  return bridgeService(EnvdFilesystem, Filesystem, impl);
}

export function envdProcess(impl: ServiceImpl<typeof Process>): ServiceImpl<typeof EnvdProcess> {
  return bridgeService(EnvdProcess, Process, impl);
}
