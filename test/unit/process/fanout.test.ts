import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { endEvent } from "../../../src/services/process/events.js";
import { OutputFanout, type FanoutLimits } from "../../../src/services/process/fanout.js";
import type { Subscriber } from "../../../src/services/process/subscriber.js";

const LIMITS: FanoutLimits = { replayBytes: 8, subscriberQueueBytes: 40, pauseBytes: 10, resumeBytes: 4, stallMs: 1000 };
const frame = (s: string) => ({ stream: "stdout" as const, data: Buffer.from(s) });

function source() {
  const calls: string[] = [];
  return { calls, pause: () => calls.push("pause"), resume: () => calls.push("resume") };
}

/** Reads `count` events from a subscriber (data as text, other events by kind). */
async function take(events: AsyncGenerator<import("../../../src/gen/sandboxagent/api_pb.js").ProcessEvent>, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const next = await events.next();
    if (next.done) break;
    const ev = next.value.event;
    out.push(ev.case === "data" ? Buffer.from(ev.value.output.value as Uint8Array).toString() : String(ev.case));
  }
  return out;
}

describe("OutputFanout", () => {
  afterEach(() => vi.useRealTimers());

  it("replays the most recent output to a new subscriber, whole frames only", async () => {
    const fanout = new OutputFanout(LIMITS);
    for (const s of ["aaa", "bbb", "ccc", "ddd"]) fanout.publish(frame(s));
    const sub = fanout.subscribe();
    fanout.publish(frame("live"));
    fanout.end(endEvent({ exitCode: 0, exited: true, status: "exit status 0" }));
    const events = sub.events(new AbortController().signal);
    expect(await take(events, 10)).toEqual(["ccc", "ddd", "live", "end"]);
  });

  it("never pauses the child while nobody is attached", () => {
    const fanout = new OutputFanout(LIMITS);
    const src = source();
    fanout.attach(src);
    for (let i = 0; i < 100; i++) fanout.publish(frame("0123456789"));
    expect(src.calls).toEqual([]);
  });

  it("follows the fastest subscriber: pauses only when every queue is full, resumes when one drains", async () => {
    const fanout = new OutputFanout({ ...LIMITS, replayBytes: 0 });
    const src = source();
    fanout.attach(src);
    const fast = fanout.subscribe();
    const slow = fanout.subscribe();
    const fastEvents = fast.events(new AbortController().signal);
    fanout.publish(frame("0123456789"));
    expect(src.calls).toEqual(["pause"]);
    expect(await take(fastEvents, 1)).toEqual(["0123456789"]);
    expect(src.calls).toEqual(["pause", "resume"]);
    // The slow one alone is over its pause mark: that does not hold the child back.
    fanout.publish(frame("abc"));
    expect(src.calls).toEqual(["pause", "resume"]);
    expect(slow.queuedBytes).toBe(13);
    expect(fast.queuedBytes).toBe(3);
  });

  it("cuts off a subscriber that falls behind its bound, telling it how much it lost", async () => {
    const fanout = new OutputFanout({ ...LIMITS, replayBytes: 0 });
    const fast = fanout.subscribe();
    const slow = fanout.subscribe();
    const fastEvents = fast.events(new AbortController().signal);
    for (let i = 0; i < 5; i++) {
      fanout.publish(frame("0123456789"));
      await take(fastEvents, 1);
    }
    const err = await slow
      .events(new AbortController().signal)
      .next()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toContain("50 bytes of output were not delivered");
  });

  it("cuts off a subscriber that takes nothing while the child waits for it, then lets the child run", () => {
    vi.useFakeTimers();
    const fanout = new OutputFanout({ ...LIMITS, replayBytes: 0 });
    const src = source();
    fanout.attach(src);
    const stuck: Subscriber = fanout.subscribe();
    fanout.publish(frame("0123456789"));
    expect(src.calls).toEqual(["pause"]);
    vi.advanceTimersByTime(1500);
    expect(src.calls).toEqual(["pause", "resume"]);
    expect(stuck.queuedBytes).toBe(0);
  });

  it("resumes the child when a new subscriber could take output, or when the last one leaves", () => {
    const fanout = new OutputFanout({ ...LIMITS, replayBytes: 0 });
    const src = source();
    fanout.attach(src);
    const first = fanout.subscribe();
    fanout.publish(frame("0123456789"));
    expect(src.calls).toEqual(["pause"]);
    const second = fanout.subscribe();
    expect(src.calls).toEqual(["pause", "resume"]);
    fanout.publish(frame("0123456789"));
    expect(src.calls).toEqual(["pause", "resume", "pause"]);
    first.close();
    second.close();
    expect(src.calls).toEqual(["pause", "resume", "pause", "resume"]);
  });
});
