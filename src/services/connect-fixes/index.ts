/**
 * Everything the agent does to work around how connect-es 2.1 serves requests, in one folder so an
 * upgrade is checked in one place. Each module names the upstream report it works around; where
 * none existed, the report to file is written out in docs/upstream/connect-es.md (the build
 * machines reach only npm and Debian, so they were not filed from here).
 *
 *   handler-wrap.ts   how the fixes reach every RPC: connect-es has no hook around its handlers
 *   client-faults.ts  undecodable requests answered `internal` instead of `invalid_argument`
 *   deadlines.ts      deadlines past setTimeout's range end the call after 1 ms
 *   grpc-trailers.ts  error messages too long for a gRPC trailer reset the stream
 *   json-input.ts     deep JSON exhausts memory; unpaired surrogates end gRPC calls with no status
 *   preencoded.ts     every bytes field copied once per nesting level: handlers may encode frames themselves
 */
import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandlerFn } from "@connectrpc/connect/protocol";
import { blameClientForMalformedRequests } from "./client-faults.js";
import { clampDeadlines } from "./deadlines.js";
import { boundGrpcMessages } from "./grpc-trailers.js";
import { type HandlerWrap, wrapRouterHandlers } from "./handler-wrap.js";
import { jsonRequestDecoder } from "./json-input.js";
import { preencodedFrames } from "./preencoded.js";

/**
 * Wraps every RPC the router holds, on every protocol; call after the services are registered.
 * `preencoded` lists the server-streaming methods whose handlers may encode frames themselves.
 */
export function applyConnectFixes(router: ConnectRouter, options: { readonly preencoded: readonly DescMethod[] }): void {
  // Innermost first: placeholders are swapped before any other wrap sees the body.
  const wraps: HandlerWrap[] = [preencodedFrames(options.preencoded), blameClientForMalformedRequests, boundGrpcMessages, clampDeadlines];
  wrapRouterHandlers(router, (handler) => wraps.reduce<UniversalHandlerFn>((next, wrap) => wrap(next, handler), handler));
}

/**
 * connect-es reads `textDecoder` from its JSON options (JsonSerializationOptions) though the plugin's
 * type does not list it; a variable, not a literal, so the extra property passes (see json-input.ts).
 */
export const RPC_JSON_OPTIONS: { ignoreUnknownFields: boolean; alwaysEmitImplicit: boolean; textDecoder: typeof jsonRequestDecoder } = {
  ignoreUnknownFields: true,
  // Zero values are sent too: a process's `end` then says `"exitCode": 0`, which clients that do
  // not default missing fields need (agentscope-ai/agentscope-java#2793, for envd's JSON).
  alwaysEmitImplicit: true,
  textDecoder: jsonRequestDecoder,
};
