/**
 * Input to a process: unary SendInput, the StreamInput client stream (HTTP/2 clients only), and
 * CloseStdin (EOF). Pipes take `stdin`, terminals take `pty`; the other kind is refused rather
 * than guessed at.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  CloseStdinResponseSchema,
  SendInputResponseSchema,
  StreamInputResponseSchema,
  type CloseStdinRequest,
  type CloseStdinResponse,
  type ProcessInput,
  type SendInputRequest,
  type SendInputResponse,
  type StreamInputRequest,
  type StreamInputResponse,
} from "../../gen/sandboxagent/api_pb.js";
import { InputClosedError } from "../../supervisor/child.js";
import type { ManagedProcess } from "./managed-process.js";
import { actingUser } from "./owner.js";
import type { ProcessTable } from "./table.js";

/**
 * Writes one input to the process and resolves once the bytes are with the kernel, so a client
 * feeding a process that does not read waits instead of filling the agent's memory.
 */
async function writeInput(proc: ManagedProcess, input: ProcessInput | undefined, signal: AbortSignal): Promise<void> {
  const chosen = input?.input;
  if (chosen === undefined || chosen.case === undefined) throw new ConnectError("no input given: set input.stdin or input.pty", Code.InvalidArgument);
  if (chosen.case === "stdin" && proc.kind === "pty") {
    throw new ConnectError(`process ${proc.pid} runs in a terminal: send input.pty instead of input.stdin`, Code.FailedPrecondition);
  }
  if (chosen.case === "pty" && proc.kind !== "pty") {
    throw new ConnectError(`process ${proc.pid} has no terminal: send input.stdin instead of input.pty`, Code.FailedPrecondition);
  }
  if (chosen.value.length === 0) return;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason instanceof ConnectError ? signal.reason : new ConnectError("input cancelled", Code.Canceled));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([proc.write(chosen.value), aborted]);
  } catch (err) {
    if (err instanceof InputClosedError) throw new ConnectError(err.message, Code.FailedPrecondition);
    throw err;
  } finally {
    if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    aborted.catch(() => {});
  }
}

export async function sendInput(table: ProcessTable, req: SendInputRequest, ctx: HandlerContext): Promise<SendInputResponse> {
  const proc = table.find(req.process, { exited: false, caller: actingUser(ctx) });
  await writeInput(proc, req.input, ctx.signal);
  return create(SendInputResponseSchema);
}

/** The first message selects the process; data messages follow and are written in order. */
export async function streamInput(table: ProcessTable, requests: AsyncIterable<StreamInputRequest>, ctx: HandlerContext): Promise<StreamInputResponse> {
  const caller = actingUser(ctx);
  let proc: ManagedProcess | undefined;
  for await (const req of requests) {
    switch (req.event.case) {
      case "start":
        if (proc !== undefined) throw new ConnectError("the process was already selected by the first message", Code.InvalidArgument);
        proc = table.find(req.event.value.process, { exited: false, caller });
        break;
      case "data":
        if (proc === undefined) throw new ConnectError("the first message must be start{process}", Code.InvalidArgument);
        await writeInput(proc, req.event.value.input, ctx.signal);
        break;
      case "keepalive":
      case undefined:
        break;
    }
  }
  return create(StreamInputResponseSchema);
}

export function closeStdin(table: ProcessTable, req: CloseStdinRequest, ctx: HandlerContext): CloseStdinResponse {
  const proc = table.find(req.process, { exited: false, caller: actingUser(ctx) });
  if (proc.kind === "pty") {
    throw new ConnectError(`process ${proc.pid} runs in a terminal, which has no stdin to close: send ^D (0x04) as input.pty`, Code.FailedPrecondition);
  }
  proc.closeInput();
  return create(CloseStdinResponseSchema);
}
