/**
 * Family "swap": ordinary writes into a directory whose owner, an unprivileged user, races them
 * with symlinks into a root-only tree (stress/symlink-arena.ts). Uploads (as root and as that
 * user), MakeDir, Move and Remove, to the names the attacker plants links under and to names it swaps
 * as soon as they appear. The answer may be anything a client's error gets; what is judged is
 * the canary tree, by the campaign.
 *
 * Safety: every path is inside the arena, itself inside the scratch directory.
 */
import fc from "fast-check";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { BOUNDARY, formContentType, simpleForm, smallContent, transports } from "./http-common.js";

/** Names the attacker plants links under (notes.txt, dangling.txt, etc/…) and fresh ones it swaps. */
const NAMES = ["notes.txt", "dangling.txt", "etc/passwd", "etc/new.txt", "etc/deep/x", "fresh.txt", "d/sub/file.txt", "d/other.txt"];

function asUser(ctx: FuzzContext): fc.Arbitrary<Array<readonly [string, string]>> {
  const token: readonly [string, string] = ["x-access-token", ctx.token];
  return fc.constantFrom<Array<readonly [string, string]>>([token], [token, ["x-user", ctx.arena!.user]]);
}

export function swapRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  const arena = ctx.arena;
  if (arena === undefined) throw new Error("the swap family needs an arena (root, and the user nobody)");
  const path = fc.constantFrom(...NAMES).map((name) => `${arena.dir}/${name}`);
  const upload = fc.record({ transport: transports, headers: asUser(ctx), path, content: smallContent }).map(
    ({ transport, headers, path: target, content }): RequestSpec => ({
      family: "swap",
      transport,
      method: "POST",
      target: "/upload",
      headers: [...headers, ["content-type", formContentType]],
      body: [simpleForm(BOUNDARY, target, content, [["path", target]])],
    }),
  );
  const rpc = (method: string, body: unknown, headers: Array<readonly [string, string]>, transport: RequestSpec["transport"]): RequestSpec => ({
    family: "swap",
    transport,
    method: "POST",
    target: `/sandboxagent.Filesystem/${method}`,
    headers: [...headers, ["content-type", "application/json"]],
    body: [Buffer.from(JSON.stringify(body))],
  });
  const makeDir = fc
    .record({ transport: transports, headers: asUser(ctx), path })
    .map(({ transport, headers, path: dir }) => rpc("MakeDir", { path: dir }, headers, transport));
  const move = fc
    .record({ transport: transports, headers: asUser(ctx), from: path, to: path })
    .map(({ transport, headers, from, to }) => rpc("Move", { source: from, destination: to }, headers, transport));
  const remove = fc
    .record({ transport: transports, headers: asUser(ctx), path: fc.constantFrom("d", "d/sub", "etc", "notes.txt").map((name) => `${arena.dir}/${name}`) })
    .map(({ transport, headers, path: target }) => rpc("Remove", { path: target }, headers, transport));
  return fc.oneof({ arbitrary: upload, weight: 3 }, makeDir, move, remove);
}
