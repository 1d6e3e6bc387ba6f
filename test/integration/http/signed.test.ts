/** Signed upload and download URLs, built the way the SDK builds them, used with no token header. */
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signature, signaturePath, type Operation } from "../../../src/auth.js";
import { tempDir, TOKEN, type TestAgent } from "../../helpers/agent.js";
import { leftovers, type Part, postForm, startFileAgent } from "../../helpers/form.js";

const ME = userInfo().username;
let agent: TestAgent;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  // The default user is root: a signed URL must carry its own user, not fall back on it.
  agent = await startFileAgent();
  ({ path: dir, cleanup } = await tempDir("agent-signed-"));
});
afterAll(async () => {
  await agent?.close();
  await cleanup?.();
});

const now = (): number => Math.floor(Date.now() / 1000);

/** The query the SDK appends: signature, optional expiration, username. */
function signedQuery(path: string | undefined, op: Operation, options: { expiration?: number; user?: string; token?: string } = {}): string {
  const user = options.user ?? ME;
  const sig = signature(signaturePath(path), op, user, options.token ?? TOKEN, options.expiration);
  const params = new URLSearchParams({ signature: sig });
  if (options.expiration !== undefined) params.set("signature_expiration", String(options.expiration));
  params.set("username", user);
  return params.toString();
}

function uploadUrl(path: string | undefined, options: Parameters<typeof signedQuery>[2] = {}): string {
  const pathParam = path === undefined ? "" : `path=${encodeURIComponent(path)}&`;
  return `${agent.url}/upload?${pathParam}${signedQuery(path, "write", options)}`;
}

/** The SDK's downloadUrl: leading slashes stripped, the rest encoded by the URL class. */
function downloadUrl(path: string, options: Parameters<typeof signedQuery>[2] = {}): string {
  const url = new URL(`/download/${path.replace(/^\/+/, "")}`, agent.url);
  return `${url.toString()}?${signedQuery(path, "read", options)}`;
}

const file = (filename: string, content: string): Part => ({ name: "file", filename, content });

describe("signed upload URLs", () => {
  it("accept a file with no token header, written as the signed user", async () => {
    const target = join(dir, "up/signed.txt");
    const res = await postForm(uploadUrl(target), [file("signed.txt", "signed")], {});
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ name: "signed.txt", type: "file", path: target });
    expect(await readFile(target, "utf8")).toBe("signed");
    expect((await stat(target)).uid).toBe(userInfo().uid);
  });

  it("accept an unexpired signature", async () => {
    const target = join(dir, "expiring.txt");
    const res = await postForm(uploadUrl(target, { expiration: now() + 60 }), [file("x", "fresh")], {});
    expect(res.status).toBe(200);
    expect(await readFile(target, "utf8")).toBe("fresh");
  });

  it("refuse expired, tampered, foreign and read signatures with 401, writing nothing", async () => {
    const target = join(dir, "refused.txt");
    const good = uploadUrl(target);
    const urls = {
      expired: uploadUrl(target, { expiration: now() - 10 }),
      tampered: good.replace(/signature=v1_(.)/, (_m, c: string) => `signature=v1_${c === "A" ? "B" : "A"}`),
      "other path": good.replace(encodeURIComponent(target), encodeURIComponent(`${target}.other`)),
      "other token": uploadUrl(target, { token: "not-the-token" }),
      "other user": good.replace(`username=${ME}`, "username=nobody"),
      "read op": `${agent.url}/upload?path=${encodeURIComponent(target)}&${signedQuery(target, "read")}`,
      "expiration removed": uploadUrl(target, { expiration: now() + 60 }).replace(/&signature_expiration=\d+/, ""),
    };
    for (const [name, url] of Object.entries(urls)) {
      const res = await postForm(url, [file("x", name)], {});
      expect(res.status, name).toBe(401);
    }
    await expect(stat(target)).rejects.toThrow();
  });

  // Issue 14, item 6: a write signature made for no path let its holder write anywhere.
  it("with no path (signed as /) write nothing, wherever the form points", async () => {
    const target = join(dir, "anywhere.txt");
    const res = await postForm(uploadUrl(undefined), [file(target, "root-signed")], {});
    expect(res.status).toBe(403);
    expect(String((res.json as { message: string }).message)).toContain("names no path");
    await expect(stat(target)).rejects.toThrow();
    const empty = await postForm(`${agent.url}/upload?path=&${signedQuery("", "write")}`, [file(target, "x")], {});
    expect(empty.status).toBe(403);
    await expect(stat(target)).rejects.toThrow();
  });

  it("refuse an expiration further ahead than the agent allows (7 days by default)", async () => {
    const target = join(dir, "forever.txt");
    const farAhead = now() + 8 * 24 * 3600;
    const res = await postForm(uploadUrl(target, { expiration: farAhead }), [file(target, "x")], {});
    expect(res.status).toBe(401);
    await expect(stat(target)).rejects.toThrow();
    const withinAWeek = await postForm(uploadUrl(target, { expiration: now() + 6 * 24 * 3600 }), [file(target, "ok")], {});
    expect(withinAWeek.status).toBe(200);
  });

  it("let files go inside a signed directory but nowhere else", async () => {
    const signedDir = join(dir, "box");
    await mkdir(signedDir);
    const inside = await postForm(uploadUrl(signedDir), [file("in.txt", "in")], {});
    expect(inside.status).toBe(200);
    expect(await readFile(join(signedDir, "in.txt"), "utf8")).toBe("in");

    const outside = join(dir, "escaped.txt");
    const res = await postForm(uploadUrl(join(signedDir, "in.txt")), [file("x", "evil"), { name: "path", content: outside }], {});
    expect(res.status).toBe(403);
    await expect(stat(outside)).rejects.toThrow();
    expect(await readFile(join(signedDir, "in.txt"), "utf8")).toBe("in");
    expect(await leftovers(signedDir)).toEqual([]);
    expect(await leftovers(dir)).toEqual([]);
  });
});

describe("signed download URLs", () => {
  it("serve the file with no token header", async () => {
    const path = join(dir, "down.txt");
    await writeFile(path, "download me");
    const res = await fetch(downloadUrl(path));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("download me");
    const expiring = await fetch(downloadUrl(path, { expiration: now() + 60 }));
    expect(expiring.status).toBe(200);
    expect(await expiring.text()).toBe("download me");
  });

  it("verify the path exactly as signed: double slashes and spaces kept (contract vector 3's shape)", async () => {
    await writeFile(join(dir, "a b.txt"), "spaced");
    const doubled = dir.replace(/^\/([^/]+)\//, "/$1//"); // e.g. /tmp//agent-signed-x
    expect(doubled).toContain("//");
    const path = `${doubled}/a b.txt`;
    const url = downloadUrl(path);
    expect(url).toContain("a%20b.txt");
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("spaced");
    // the same URL signed over the normalised path does not verify
    const normalised = `${new URL(`/download/${path.slice(1)}`, agent.url).toString()}?${signedQuery(join(dir, "a b.txt"), "read")}`;
    expect((await fetch(normalised)).status).toBe(401);
  });

  it("refuse expired, tampered and write signatures with 401", async () => {
    const path = join(dir, "secret.txt");
    await writeFile(path, "secret");
    const good = downloadUrl(path);
    const urls = {
      expired: downloadUrl(path, { expiration: now() - 1 }),
      tampered: good.replace(/signature=v1_(.)/, (_m, c: string) => `signature=v1_${c === "A" ? "B" : "A"}`),
      "other file": good.replace("secret.txt", "down.txt"),
      "write op": `${new URL(`/download/${path.slice(1)}`, agent.url).toString()}?${signedQuery(path, "write")}`,
    };
    for (const [name, url] of Object.entries(urls)) {
      const res = await fetch(url);
      expect(res.status, name).toBe(401);
      expect(await res.text(), name).not.toContain("secret");
    }
  });
});

describe("signed URLs without a username", () => {
  // Issue 14, item 6: such a URL acts as the configured default user, never as root.
  it("act as the configured default user, whose permissions decide", async () => {
    const other = await startFileAgent({ defaultUser: "nobody" });
    const { path: root, cleanup: clean } = await tempDir("agent-signed-default-");
    try {
      const secret = join(root, "secret.txt");
      await writeFile(secret, "root only", { mode: 0o600 });
      const path = secret;
      const sig = signature(signaturePath(path), "read", "nobody", TOKEN);
      const res = await fetch(`${other.url}/download${path}?signature=${encodeURIComponent(sig)}`);
      // nobody may not read it: the URL did not act as root.
      expect(res.status).toBe(403);
      const asRoot = signature(signaturePath(path), "read", "root", TOKEN);
      const forged = await fetch(`${other.url}/download${path}?signature=${encodeURIComponent(asRoot)}`);
      expect(forged.status).toBe(401);
    } finally {
      await other.close();
      await clean();
    }
  });
});
