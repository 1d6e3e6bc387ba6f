/**
 * The access matrix: every RPC and every plain route, called with no token, a wrong token, the
 * right token, a signed URL and an expired signed URL. Only /health is open; only /upload,
 * /download and envd's /files accept signatures; refusals are 401 / unauthenticated and never echo the token.
 */
import { create, type DescMethod, type DescMethodStreaming, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signature } from "../../../src/auth.js";
import { SERVED_SERVICES } from "../../../src/services/index.js";
import { startTestAgent, tempDir, transport, type TestAgent } from "../../helpers/agent.js";

let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  agent = await startTestAgent();
  dir = await tempDir();
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

const methods: DescMethod[] = SERVED_SERVICES.flatMap((service) => service.methods);
type Credential = "none" | "wrong" | "right";
const headersFor = (credential: Credential): Record<string, string> =>
  credential === "none" ? {} : { "x-access-token": credential === "right" ? agent.token : "wrong-token" };

/** Calls any RPC with a default request and returns the Connect code it ended with (or "ok"). */
async function callRpc(method: DescMethod, credential: Credential): Promise<Code | "ok"> {
  // Client streams need HTTP/2; everything else goes over the SDK's transport (Connect JSON, HTTP/1.1).
  const t = transport(agent.url, method.methodKind === "client_streaming" ? "connect-h2" : "connect-json-h1");
  const abort = new AbortController();
  const header = new Headers(headersFor(credential));
  try {
    if (method.methodKind === "unary") {
      await t.unary(method as DescMethodUnary, abort.signal, 10_000, header, create(method.input), undefined);
    } else {
      async function* one() {
        yield create(method.input);
      }
      const res = await t.stream(method as DescMethodStreaming, abort.signal, 10_000, header, one(), undefined);
      // The first message or the end of the stream is enough to know the call was let in.
      for await (const _ of res.message) break;
    }
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  } finally {
    abort.abort();
  }
}

describe("access matrix: RPCs", () => {
  it("covers every RPC of every served service", () => {
    expect(methods.length).toBeGreaterThanOrEqual(17);
  });

  for (const method of methods) {
    const name = `${method.parent.typeName}/${method.name}`;
    it(`${name}: refused without a token or with a wrong one, let in with the right one`, async () => {
      expect(await callRpc(method, "none")).toBe(Code.Unauthenticated);
      expect(await callRpc(method, "wrong")).toBe(Code.Unauthenticated);
      expect(await callRpc(method, "right")).not.toBe(Code.Unauthenticated);
    });
  }

  it("a signature in the query does not stand in for the token on RPCs", async () => {
    const sig = signature("/", "read", "root", agent.token);
    const res = await fetch(`${agent.url}/sandboxagent.Filesystem/Stat?signature=${encodeURIComponent(sig)}&username=root`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
  });

  it("refusals are 401 with Connect's unauthenticated code and never echo the token", async () => {
    for (const token of [undefined, "wrong-token", `${agent.token}x`]) {
      const res = await fetch(`${agent.url}/sandboxagent.Filesystem/Stat`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { "x-access-token": token } : {}) },
        body: JSON.stringify({ path: "/" }),
      });
      expect(res.status).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ code: "unauthenticated" });
      expect(text).not.toContain(agent.token);
    }
  });

  it("refuses an unknown Linux user as unauthenticated", async () => {
    const res = await fetch(`${agent.url}/sandboxagent.Filesystem/Stat`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-access-token": agent.token, authorization: "Bearer no-such-user-xyz" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: "unauthenticated" });
  });
});

describe("access matrix: plain routes", () => {
  const nowSeconds = (): number => Math.floor(Date.now() / 1000);
  let file: string;
  beforeAll(async () => {
    file = `${dir.path}/matrix.txt`;
    const { writeFile } = await import("node:fs/promises");
    await writeFile(file, "matrix");
  });

  type Mode = Credential | "signed" | "expired";
  const MODES: Mode[] = ["none", "wrong", "right", "signed", "expired"];

  function signedQuery(path: string | undefined, op: "read" | "write", mode: Mode): string {
    if (mode !== "signed" && mode !== "expired") return "";
    const expiration = mode === "expired" ? nowSeconds() - 10 : nowSeconds() + 60;
    const sig = signature(path ? `/${path.replace(/^\/+/, "")}` : "/", op, "root", agent.token, expiration);
    return `signature=${encodeURIComponent(sig)}&signature_expiration=${expiration}&username=root`;
  }
  const tokenHeaders = (mode: Mode): Record<string, string> => (mode === "none" || mode === "signed" || mode === "expired" ? {} : headersFor(mode));
  const allowed = (mode: Mode, signedOk: boolean): boolean => mode === "right" || (signedOk && mode === "signed");

  it.each(MODES)("GET /health is open (%s)", async (mode) => {
    const res = await fetch(`${agent.url}/health?${signedQuery(undefined, "read", mode)}`, { headers: tokenHeaders(mode) });
    expect(res.status).toBe(200);
  });

  it.each(MODES)("GET and HEAD /download (%s)", async (mode) => {
    for (const method of ["GET", "HEAD"]) {
      const res = await fetch(`${agent.url}/download${file}?${signedQuery(file, "read", mode)}`, { method, headers: tokenHeaders(mode) });
      expect(res.status, method).toBe(allowed(mode, true) ? 200 : 401);
      if (method === "GET") {
        const text = await res.text();
        if (allowed(mode, true)) expect(text).toBe("matrix");
        else expect(text).not.toContain(agent.token);
      }
    }
  });

  it.each(MODES)("POST /upload (%s)", async (mode) => {
    const target = `${dir.path}/upload-${mode}.txt`;
    const form = new FormData();
    form.append("file", new Blob([`by ${mode}`]), target);
    const res = await fetch(`${agent.url}/upload?path=${encodeURIComponent(target)}&${signedQuery(target, "write", mode)}`, {
      method: "POST",
      headers: tokenHeaders(mode),
      body: form,
    });
    expect(res.status).toBe(allowed(mode, true) ? 200 : 401);
    const { existsSync } = await import("node:fs");
    expect(existsSync(target)).toBe(allowed(mode, true));
  });

  /** envd signs the raw query values: the path as sent, the user as sent. */
  function envdSignedQuery(path: string, op: "read" | "write", mode: Mode): string {
    if (mode !== "signed" && mode !== "expired") return "";
    const expiration = mode === "expired" ? nowSeconds() - 10 : nowSeconds() + 60;
    const sig = signature(path, op, "root", agent.token, expiration);
    return `&signature=${encodeURIComponent(sig)}&signature_expiration=${expiration}&username=root`;
  }

  it.each(MODES)("GET /files, envd's download (%s)", async (mode) => {
    const res = await fetch(`${agent.url}/files?path=${encodeURIComponent(file)}${envdSignedQuery(file, "read", mode)}`, { headers: tokenHeaders(mode) });
    expect(res.status).toBe(allowed(mode, true) ? 200 : 401);
    const text = await res.text();
    if (allowed(mode, true)) expect(text).toBe("matrix");
    else expect(text).not.toContain(agent.token);
  });

  it.each(MODES)("POST /files, envd's upload (%s)", async (mode) => {
    const target = `${dir.path}/files-${mode}.txt`;
    const res = await fetch(`${agent.url}/files?path=${encodeURIComponent(target)}${envdSignedQuery(target, "write", mode)}`, {
      method: "POST",
      headers: { ...tokenHeaders(mode), "content-type": "application/octet-stream" },
      body: `by ${mode}`,
    });
    expect(res.status).toBe(allowed(mode, true) ? 200 : 401);
    const { existsSync } = await import("node:fs");
    expect(existsSync(target)).toBe(allowed(mode, true));
  });

  it.each(MODES)("GET /envs and POST /init want the token (%s)", async (mode) => {
    const envs = await fetch(`${agent.url}/envs?${signedQuery("/envs", "read", mode)}`, { headers: tokenHeaders(mode) });
    expect(envs.status).toBe(allowed(mode, false) ? 200 : 401);
    const init = await fetch(`${agent.url}/init?${signedQuery("/init", "write", mode)}`, {
      method: "POST",
      headers: { ...tokenHeaders(mode), "content-type": "application/json" },
      body: JSON.stringify({ envVars: { SET_BY: mode } }),
    });
    expect(init.status).toBe(allowed(mode, false) ? 204 : 401);
  });

  it.each(MODES)("POST /execute, E2B's code interpreter, wants the token (%s)", async (mode) => {
    const res = await fetch(`${agent.url}/execute?${signedQuery("/execute", "write", mode)}`, {
      method: "POST",
      headers: { ...tokenHeaders(mode), "content-type": "application/json" },
      body: JSON.stringify({ code: "echo ran", language: "bash" }),
    });
    expect(res.status).toBe(allowed(mode, false) ? 200 : 401);
    const text = await res.text();
    if (allowed(mode, false)) expect(text).toContain("ran");
    else expect(text).not.toContain(agent.token);
  });

  it.each(MODES)("GET /contexts: open without a token (E2B's SDK sends none), a wrong one refused (%s)", async (mode) => {
    const res = await fetch(`${agent.url}/contexts?${signedQuery("/contexts", "read", mode)}`, { headers: tokenHeaders(mode) });
    expect(res.status).toBe(mode === "wrong" ? 401 : 200);
  });

  it.each(MODES)("unknown routes say nothing without the token (%s)", async (mode) => {
    const res = await fetch(`${agent.url}/no/such/route?${signedQuery("/no/such/route", "read", mode)}`, { headers: tokenHeaders(mode) });
    expect(res.status).toBe(allowed(mode, false) ? 404 : 401);
  });

  it("a signature for one file does not open another", async () => {
    const sig = signature(file, "read", "root", agent.token);
    const res = await fetch(`${agent.url}/download/etc/hostname?signature=${encodeURIComponent(sig)}&username=root`);
    expect(res.status).toBe(401);
  });

  it("a read signature does not allow a write", async () => {
    const target = `${dir.path}/wrong-op.txt`;
    const sig = signature(target, "read", "root", agent.token);
    const form = new FormData();
    form.append("file", new Blob(["x"]), target);
    const res = await fetch(`${agent.url}/upload?path=${encodeURIComponent(target)}&signature=${encodeURIComponent(sig)}&username=root`, {
      method: "POST",
      body: form,
    });
    expect(res.status).toBe(401);
  });
});
