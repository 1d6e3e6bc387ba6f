/**
 * Shared by the execution tests: run code through the real Execute RPC and collect its frames into
 * the shape a reader checks (stdout, stderr, results, errors, the main result).
 */
import type { Client } from "@connectrpc/connect";
import type {
  ContextService,
  Error as ExecutionError,
  ExecuteResponse,
  ExecutionService,
  Result,
} from "../../src/gen/sandboxagent/api_pb.js";
import { AUTH } from "../helpers/agent.js";

export interface Collected {
  readonly frames: ExecuteResponse[];
  readonly stdout: string;
  readonly stderr: string;
  readonly results: Result[];
  readonly errors: ExecutionError[];
  /** The last result with isMainResult set. */
  readonly main: Result | undefined;
}

export interface RunOptions {
  readonly contextId?: string;
  readonly language?: string;
  readonly envVars?: Record<string, string>;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export async function run(exec: Client<typeof ExecutionService>, code: string, options: RunOptions = {}): Promise<Collected> {
  const frames: ExecuteResponse[] = [];
  const stream = exec.execute(
    { code, contextId: options.contextId ?? "", language: options.language ?? "", envVars: options.envVars ?? {} },
    { headers: AUTH, timeoutMs: options.timeoutMs, signal: options.signal },
  );
  for await (const frame of stream) frames.push(frame);
  return collect(frames);
}

export function collect(frames: ExecuteResponse[]): Collected {
  let stdout = "";
  let stderr = "";
  const results: Result[] = [];
  const errors: ExecutionError[] = [];
  for (const { event } of frames) {
    if (event.case === "stdout") stdout += event.value.content;
    else if (event.case === "stderr") stderr += event.value.content;
    else if (event.case === "result") results.push(event.value);
    else if (event.case === "error") errors.push(event.value);
  }
  return { frames, stdout, stderr, results, errors, main: results.filter((r) => r.isMainResult).at(-1) };
}

export async function newContext(contexts: Client<typeof ContextService>, language: string, cwd = ""): Promise<string> {
  const context = await contexts.createContext({ language, cwd }, { headers: AUTH });
  return context.id;
}
