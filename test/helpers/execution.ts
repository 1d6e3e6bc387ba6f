/**
 * Shared by the execution tests: run code through the real Execute RPC and collect its frames into
 * the shape a reader checks (stdout, stderr, results, errors, the main result).
 */
import type { Client } from "@connectrpc/connect";
import { ContextService, ExecutionService, type Error as ExecutionError, type ExecuteResponse, type Result } from "../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, startTestAgent, tempDir, type TestAgent } from "./agent.js";

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

/** A real agent with Execute and Context clients and a scratch directory, as each language's tests use it. */
export interface ExecutionHarness {
  readonly agent: TestAgent;
  readonly exec: Client<typeof ExecutionService>;
  readonly contexts: Client<typeof ContextService>;
  readonly dir: { readonly path: string; readonly cleanup: () => Promise<void> };
  readonly close: () => Promise<void>;
}

export async function startExecutionHarness(dirPrefix: string, overrides: Parameters<typeof startTestAgent>[0] = {}): Promise<ExecutionHarness> {
  const agent = await startTestAgent(overrides);
  const dir = await tempDir(dirPrefix);
  return {
    agent,
    exec: client(ExecutionService, agent.url),
    contexts: client(ContextService, agent.url),
    dir,
    close: async () => {
      await agent.close();
      await dir.cleanup();
    },
  };
}
