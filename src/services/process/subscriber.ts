/**
 * One client attached to a process's output, with its own queue. The queue is bounded: a
 * subscriber that falls too far behind, or stops taking output altogether, is cut off with an
 * error that says how much it lost, and the process and the other subscribers carry on.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ProcessEvent } from "../../gen/sandboxagent/api_pb.js";
import { Queue } from "./queue.js";

interface Item {
  readonly event: ProcessEvent;
  /** Output bytes the event carries (0 for start, keepalive and end). */
  readonly bytes: number;
  readonly last: boolean;
}

export interface SubscriberListener {
  /** The subscriber took an event off its queue. */
  readonly onProgress: (subscriber: Subscriber) => void;
  /** The subscriber is gone: finished, cut off, or its client left. */
  readonly onClose: (subscriber: Subscriber) => void;
}

const MiB = 1024 * 1024;
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(bytes % MiB === 0 ? 0 : 1)} MiB`;

export class Subscriber {
  private readonly items = new Queue<Item>();
  private queued = 0;
  private progressAt = Date.now();
  private wake: (() => void) | undefined;
  private failure: ConnectError | undefined;
  private closed = false;

  constructor(
    private readonly maxQueuedBytes: number,
    /** Named in error messages: what a client gets back when it attaches again. */
    private readonly replayBytes: number,
    private readonly listener: SubscriberListener,
  ) {}

  /** Output bytes waiting to be sent to this subscriber. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** When this subscriber last took an event (or was created). */
  get lastProgressAt(): number {
    return this.progressAt;
  }

  /** Queues live output; cuts the subscriber off when it would exceed its bound. */
  offer(event: ProcessEvent, bytes: number): void {
    if (this.closed || this.failure !== undefined) return;
    if (this.queued + bytes > this.maxQueuedBytes) {
      this.cutOff(`fell behind by more than ${mib(this.maxQueuedBytes)} of output`, this.queued + bytes);
      return;
    }
    this.enqueue({ event, bytes, last: false });
  }

  /** Queues without the bound: the replay buffer, which is smaller than any subscriber's bound. */
  preload(event: ProcessEvent, bytes: number): void {
    this.enqueue({ event, bytes, last: false });
  }

  /** Queues the end event; the subscriber's stream finishes after it. */
  end(event: ProcessEvent): void {
    if (this.closed || this.failure !== undefined) return;
    this.enqueue({ event, bytes: 0, last: true });
  }

  /** A keepalive only matters on an idle stream; a busy one already shows the connection is alive. */
  keepalive(event: ProcessEvent): void {
    if (this.closed || this.failure !== undefined || this.items.length > 0) return;
    this.enqueue({ event, bytes: 0, last: false });
  }

  /** Drops what is queued and ends the subscriber's stream with `resource_exhausted`. */
  cutOff(why: string, droppedBytes = this.queued): void {
    if (this.closed || this.failure !== undefined) return;
    this.failure = new ConnectError(
      `subscriber ${why}: ${droppedBytes} bytes of output were not delivered. ` +
        `The process keeps running; Connect again to resume from its most recent ${mib(this.replayBytes)} of output`,
      Code.ResourceExhausted,
    );
    this.items.clear();
    this.queued = 0;
    this.listener.onClose(this);
    this.wake?.();
  }

  /**
   * The queued events, in order, until the end event. Stops quietly when `signal` aborts (the
   * client left) and throws when the subscriber was cut off.
   */
  async *events(signal: AbortSignal): AsyncGenerator<ProcessEvent> {
    const onAbort = (): void => this.wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (signal.aborted) return;
        const item = this.shift();
        if (item !== undefined) {
          yield item.event;
          if (item.last) return;
          continue;
        }
        if (this.failure !== undefined) throw this.failure;
        if (this.closed) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.items.clear();
    this.queued = 0;
    this.listener.onClose(this);
    this.wake?.();
  }

  private enqueue(item: Item): void {
    this.items.push(item);
    this.queued += item.bytes;
    this.wake?.();
  }

  private shift(): Item | undefined {
    const item = this.items.shift();
    if (item === undefined) return undefined;
    this.queued -= item.bytes;
    this.progressAt = Date.now();
    this.listener.onProgress(this);
    return item;
  }
}
