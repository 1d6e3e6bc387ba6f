/**
 * Hostile plain-HTTP requests: every parser and boundary in front of /download, /upload, the
 * access check and the HTTP/1.1 server itself. One family per kind of input (see each module);
 * `httpRequests` mixes them, `httpFamilies` gives them one by one so that a property can run each
 * family its own number of times.
 *
 * The generators refer to fixtures by name (FIXTURES): call `prepareHttpScratch(ctx.scratch)`
 * first, or the requests that aim at them only reach the "not found" paths.
 */
import fc from "fast-check";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { authRequests, signedRequests } from "./http-auth.js";
import { multipartRequests } from "./http-multipart.js";
import { pathRequests } from "./http-paths.js";
import { rangeRequests } from "./http-range.js";
import { rawRequests } from "./http-raw.js";

export { EXPECT_HEADER, FIXTURE_FILE_BYTES, FIXTURES, prepareHttpScratch, SERVED, UNAUTHORISED, uploadPathIsSafe } from "./http-common.js";

export type HttpFamily = "path" | "range" | "multipart" | "signed" | "auth" | "raw";

export function httpFamilies(ctx: FuzzContext): Record<HttpFamily, fc.Arbitrary<RequestSpec>> {
  return {
    path: pathRequests(ctx),
    range: rangeRequests(ctx),
    multipart: multipartRequests(ctx),
    signed: signedRequests(ctx),
    auth: authRequests(ctx),
    raw: rawRequests(ctx),
  };
}

export function httpRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  return fc.oneof(...Object.values(httpFamilies(ctx)));
}
