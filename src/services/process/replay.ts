/**
 * The most recent output of a process, kept for clients that attach later. Whole frames are
 * dropped from the front when the budget is exceeded, so the replay always starts at a frame (and
 * therefore a character) boundary.
 */
import type { ProcessEvent } from "../../gen/sandboxagent/api_pb.js";
import { Queue } from "./queue.js";

interface Entry {
  readonly event: ProcessEvent;
  readonly bytes: number;
}

export class ReplayBuffer {
  private readonly entries = new Queue<Entry>();
  private total = 0;

  constructor(private readonly maxBytes: number) {}

  add(event: ProcessEvent, bytes: number): void {
    this.entries.push({ event, bytes });
    this.total += bytes;
    while (this.total > this.maxBytes && this.entries.length > 0) this.total -= this.entries.shift()!.bytes;
  }

  snapshot(): readonly Entry[] {
    return this.entries.toArray();
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }
}
