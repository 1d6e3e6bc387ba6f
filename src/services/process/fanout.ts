/**
 * A process's output on its way to clients: every frame goes into the replay buffer and to each
 * attached subscriber's own bounded queue. Publishing never waits for anyone.
 *
 * Flow control follows the fastest subscriber, never the slowest: reading from the child pauses
 * only while *every* attached subscriber has a full queue (nobody could take more output, so the
 * child writes at the speed of its best reader, as with a pipe), and resumes as soon as any of
 * them drains. A subscriber behind a faster one is cut off when its queue reaches its bound; a
 * subscriber that holds the child up by taking nothing at all is cut off after a while. With
 * nobody attached the child is never paused: its output goes to the replay buffer.
 */
import type { ProcessEvent } from "../../gen/sandboxagent/api_pb.js";
import type { Frame } from "./coalescer.js";
import { dataEvent } from "./events.js";
import { ReplayBuffer } from "./replay.js";
import { Subscriber } from "./subscriber.js";

export interface FanoutLimits {
  readonly replayBytes: number;
  /** A subscriber with this much queued is cut off (while a faster one keeps the child going). */
  readonly subscriberQueueBytes: number;
  /** Every subscriber has this much queued: stop reading from the child. */
  readonly pauseBytes: number;
  /** Some subscriber is down to this: read again. */
  readonly resumeBytes: number;
  /** While the child waits, a subscriber that takes nothing for this long is cut off. */
  readonly stallMs: number;
}

/** The child's output, as far as flow control is concerned. */
export interface OutputSource {
  pause(): void;
  resume(): void;
}

export class OutputFanout {
  private readonly replay: ReplayBuffer;
  private readonly subscribers = new Set<Subscriber>();
  private ended: ProcessEvent | undefined;
  private source: OutputSource | undefined;
  private paused = false;
  private stallWatch: NodeJS.Timeout | undefined;

  constructor(private readonly limits: FanoutLimits) {
    this.replay = new ReplayBuffer(limits.replayBytes);
  }

  /** Connects flow control to the child once it exists. */
  attach(source: OutputSource): void {
    this.source = source;
  }

  publish(frame: Frame): void {
    const event = dataEvent(frame.stream, frame.data);
    const bytes = frame.data.length;
    this.replay.add(event, bytes);
    for (const subscriber of this.subscribers) subscriber.offer(event, bytes);
    this.maybePause();
  }

  end(event: ProcessEvent): void {
    this.ended = event;
    for (const subscriber of this.subscribers) subscriber.end(event);
    this.setPaused(false);
  }

  /** A new subscriber that first receives the replay buffer, then live output, then the end. */
  subscribe(): Subscriber {
    const subscriber = new Subscriber(this.limits.subscriberQueueBytes, this.limits.replayBytes, {
      onProgress: (s) => {
        if (this.paused && s.queuedBytes <= this.limits.resumeBytes) this.setPaused(false);
      },
      onClose: (s) => {
        this.subscribers.delete(s);
        this.maybeResume();
      },
    });
    for (const { event, bytes } of this.replay.snapshot()) subscriber.preload(event, bytes);
    if (this.ended !== undefined) {
      subscriber.end(this.ended);
    } else {
      this.subscribers.add(subscriber);
      this.maybeResume();
    }
    return subscriber;
  }

  /**
   * Drops the replay buffer once the process is forgotten. Subscribers still reading keep their
   * own queues, end event included, and finish on their own.
   */
  release(): void {
    this.replay.clear();
  }

  private maybePause(): void {
    if (this.paused || this.ended !== undefined || this.subscribers.size === 0) return;
    for (const subscriber of this.subscribers) {
      if (subscriber.queuedBytes < this.limits.pauseBytes) return;
    }
    this.setPaused(true);
  }

  private maybeResume(): void {
    if (!this.paused) return;
    if (this.subscribers.size === 0) {
      this.setPaused(false);
      return;
    }
    for (const subscriber of this.subscribers) {
      if (subscriber.queuedBytes <= this.limits.resumeBytes) {
        this.setPaused(false);
        return;
      }
    }
  }

  private setPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (paused) {
      this.source?.pause();
      const period = Math.max(100, Math.min(1000, this.limits.stallMs / 4));
      this.stallWatch = setInterval(() => this.cutStalled(), period);
    } else {
      clearInterval(this.stallWatch);
      this.stallWatch = undefined;
      this.source?.resume();
    }
  }

  private cutStalled(): void {
    const now = Date.now();
    for (const subscriber of this.subscribers) {
      if (now - subscriber.lastProgressAt >= this.limits.stallMs) {
        subscriber.cutOff(`took no output for ${Math.round(this.limits.stallMs / 1000)} s while the process waited for it`);
      }
    }
  }
}
