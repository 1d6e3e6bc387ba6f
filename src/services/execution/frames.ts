import { create } from "@bufbuild/protobuf";
import { ExecuteResponseSchema, type ExecuteResponse } from "../../gen/sandboxagent/api_pb.js";

/** Output text held for a slow reader beyond which more output is dropped, and counted. */
export const MAX_PENDING_TEXT = 32 * 1024 * 1024;

const isOutput = (frame: ExecuteResponse): boolean => frame.event.case === "stdout" || frame.event.case === "stderr";
const textOf = (frame: ExecuteResponse): string => (frame.event.case === "stdout" || frame.event.case === "stderr" ? frame.event.value.content : "");

/**
 * Frames waiting for a slow reader. Consecutive stdout (or stderr) frames merge into one, so a
 * chatty cell costs a slow reader fewer frames; and the agent never holds more than
 * MAX_PENDING_TEXT of output for one reader: beyond it, output is dropped and the reader is told
 * how much once it catches up. Results and errors are never dropped.
 */
export class FrameQueue {
  private readonly items: ExecuteResponse[] = [];
  private pendingText = 0;
  private droppedText = 0;
  private wake: (() => void) | undefined;
  private ended = false;
  private failure: unknown;

  push(frame: ExecuteResponse): void {
    if (isOutput(frame)) {
      const size = textOf(frame).length;
      if (this.pendingText + size > MAX_PENDING_TEXT) {
        this.droppedText += size;
        return;
      }
      this.pendingText += size;
      const last = this.items.at(-1);
      const { event } = frame;
      if (last !== undefined && last.event.case === event.case && (event.case === "stdout" || event.case === "stderr")) {
        (last.event.value as { content: string }).content += event.value.content;
        this.wake?.();
        return;
      }
    } else if (this.droppedText > 0) {
      // Said before the result or error that follows, so the summary stays the last frame.
      this.items.push(this.droppedNote());
    }
    this.items.push(frame);
    this.wake?.();
  }

  end(failure?: unknown): void {
    this.ended = true;
    this.failure = failure;
    this.wake?.();
  }

  private droppedNote(): ExecuteResponse {
    const note = `\n[sandbox-agent] ${this.droppedText} characters of output were dropped: the client read more slowly than the code wrote\n`;
    this.droppedText = 0;
    return create(ExecuteResponseSchema, { event: { case: "stderr", value: { content: note } } });
  }

  async *drain(): AsyncGenerator<ExecuteResponse> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        this.pendingText -= textOf(next).length;
        yield next;
        continue;
      }
      if (this.droppedText > 0) {
        yield this.droppedNote();
        continue;
      }
      if (this.ended) {
        if (this.failure !== undefined) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
