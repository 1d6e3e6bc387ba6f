/** The ProcessEvent messages, built in one place. */
import { create } from "@bufbuild/protobuf";
import { ProcessEventSchema, type ProcessEvent, type ProcessEvent_EndEvent } from "../../gen/sandboxagent/api_pb.js";
import type { Stream } from "./coalescer.js";

export function startEvent(pid: number): ProcessEvent {
  return create(ProcessEventSchema, { event: { case: "start", value: { pid } } });
}

export function dataEvent(stream: Stream, data: Uint8Array): ProcessEvent {
  return create(ProcessEventSchema, { event: { case: "data", value: { output: { case: stream, value: data } } } });
}

export function endEvent(end: Omit<ProcessEvent_EndEvent, "$typeName" | "$unknown">): ProcessEvent {
  return create(ProcessEventSchema, { event: { case: "end", value: end } });
}

/** Keepalives carry nothing, so every stream shares one. */
export const KEEPALIVE: ProcessEvent = create(ProcessEventSchema, { event: { case: "keepalive", value: {} } });
