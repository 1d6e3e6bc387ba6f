/**
 * The E2B code interpreter's wire (contract 3.3) with plain fetch: the NDJSON body byte by byte,
 * statuses and texts, what a call without a token may do, and the interpreter's own port.
 */
import { randomUUID } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, freePort, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { ensureUser, VICTIM } from "../../helpers/linux-users.js";

type Line = Record<string, unknown> & { type: string };

const JSON_HEADERS = { "content-type": "application/json" };
const WITH_TOKEN = { ...JSON_HEADERS, ...AUTH };

let agent: TestAgent;

beforeAll(async () => {
  ensureUser(VICTIM);
  // The default user is an ordinary one, so that "acts as the default user" is visible.
  agent = await startTestAgent({ defaultUser: VICTIM });
});
afterAll(async () => agent?.close());

function execute(body: unknown, headers: Record<string, string> = WITH_TOKEN, url = agent.url): Promise<Response> {
  return fetch(`${url}/execute`, { method: "POST", headers, body: JSON.stringify(body) });
}

/** The body's lines, checked to be NDJSON as the SDK reads it: no blank line, end_of_execution last. */
async function lines(res: Response): Promise<Line[]> {
  const text = await res.text();
  expect(text.endsWith("\n")).toBe(true);
  const parsed = text
    .slice(0, -1)
    .split("\n")
    .map((line) => JSON.parse(line) as Line);
  expect(parsed.at(-1)).toEqual({ type: "end_of_execution" });
  expect(parsed.filter((line) => line.type === "end_of_execution")).toHaveLength(1);
  return parsed;
}

const stdoutOf = (body: Line[]): string =>
  body
    .filter((line) => line.type === "stdout")
    .map((line) => line.text)
    .join("");

describe("e2b interpreter: the NDJSON body", () => {
  it("is pure ASCII: every character from U+007F up is escaped", async () => {
    const text = "héllo ✓ 日本語 🎉 \u007f";
    const res = await execute({ code: `print(${JSON.stringify(text)})` });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const bytes = new Uint8Array(await res.clone().arrayBuffer());
    expect(bytes.every((byte) => byte < 0x7f)).toBe(true);
    const body = await lines(res);
    expect(stdoutOf(body)).toBe(`${text}\n`);
    const stdout = body.find((line) => line.type === "stdout");
    expect(new Date(String(stdout?.timestamp)).toISOString()).toBe(stdout?.timestamp);
  });

  it("sends the status and headers before the code has printed anything", async () => {
    // Where the kernel's user (the default user) can see it.
    const flag = join(tmpdir(), `e2b-go-${randomUUID()}`);
    const res = await execute({ code: `import os, time\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.05)\nprint('went')` });
    expect(res.status).toBe(200);
    await writeFile(flag, "");
    expect(stdoutOf(await lines(res))).toBe("went\n");
    await rm(flag);
  });

  it("says keepalive while the code is silent", async () => {
    const body = await lines(await execute({ code: "import time\ntime.sleep(6)\nprint('done')" }));
    const keepalive = body.findIndex((line) => line.type === "keepalive");
    expect(body[keepalive]).toEqual({ type: "keepalive" });
    expect(keepalive).toBeLessThan(body.findIndex((line) => line.type === "stdout"));
  });

  it("puts result fields at the top level, with is_main_result and the execution count", async () => {
    const body = await lines(await execute({ code: "from IPython.display import display, Markdown\ndisplay(Markdown('*m*'))\n'bar'" }));
    const results = body.filter((line) => line.type === "result");
    expect(results[0]).toMatchObject({ markdown: "*m*", is_main_result: false, extra: {} });
    expect(results[1]).toEqual({ type: "result", text: "bar", extra: {}, is_main_result: true });
    expect(body.find((line) => line.type === "number_of_executions")?.execution_count).toEqual(expect.any(Number));
  });

  it("gives an error with its traceback as one string", async () => {
    const body = await lines(await execute({ code: "1/0" }));
    const error = body.find((line) => line.type === "error");
    expect(error).toMatchObject({ name: "ZeroDivisionError", value: "division by zero" });
    expect(typeof error?.traceback).toBe("string");
    expect(error?.traceback).toContain("1/0");
  });

  it("interrupts the execution of a client that leaves, keeping the context's state", async () => {
    const created = (await (await fetch(`${agent.url}/contexts`, { method: "POST", headers: JSON_HEADERS, body: "{}" })).json()) as { id: string };
    await lines(await execute({ code: "state = 'kept'", context_id: created.id }));
    const leaving = new AbortController();
    const res = await fetch(`${agent.url}/execute`, {
      method: "POST",
      headers: WITH_TOKEN,
      body: JSON.stringify({ code: "print('looping', flush=True)\nwhile True: pass", context_id: created.id }),
      signal: leaving.signal,
    });
    const reader = res.body!.getReader();
    let seen = "";
    while (!seen.includes("looping")) seen += new TextDecoder().decode((await reader.read()).value);
    leaving.abort();
    const next = await lines(await execute({ code: "state", context_id: created.id }));
    expect(next.find((line) => line.type === "result")?.text).toBe("kept");
  });
});

describe("e2b interpreter: a client that leaves early", () => {
  it("never leaves its code running, even when it left while its default context was starting", async () => {
    const leaving = new AbortController();
    // Whenever the abort lands (before, during or after the R kernel's start), the loop must not hold the context.
    setTimeout(() => leaving.abort(), 300);
    await fetch(`${agent.url}/execute`, {
      method: "POST",
      headers: WITH_TOKEN,
      body: JSON.stringify({ code: "repeat {}", language: "r" }),
      signal: leaving.signal,
    })
      .then((res) => res.text())
      .catch(() => undefined);
    const next = await lines(await execute({ code: "cat('free', '\\n')", language: "r" }));
    expect(stdoutOf(next)).toBe("free \n");
  });
});

describe("e2b interpreter: restart", () => {
  it("ends an execution running in a restarted context with ContextRestarting, and the context runs on", async () => {
    const created = (await (await fetch(`${agent.url}/contexts`, { method: "POST", headers: JSON_HEADERS, body: "{}" })).json()) as { id: string };
    await lines(await execute({ code: "state = 'lost'", context_id: created.id }));
    const res = await execute({ code: "print('looping', flush=True)\nwhile True: pass", context_id: created.id });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("looping")) text += new TextDecoder().decode((await reader.read()).value);
    expect((await fetch(`${agent.url}/contexts/${created.id}/restart`, { method: "POST", headers: JSON_HEADERS })).status).toBe(200);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
    const body = text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Line);
    expect(body.find((line) => line.type === "error")?.name).toBe("ContextRestarting");
    expect(body.at(-1)).toEqual({ type: "end_of_execution" });

    const next = await lines(await execute({ code: "print('fresh')\nstate", context_id: created.id }));
    expect(stdoutOf(next)).toBe("fresh\n");
    expect(next.find((line) => line.type === "error")?.name).toBe("NameError");
  });
});

describe("e2b interpreter: statuses and texts", () => {
  it("refuses context_id with language, 400", async () => {
    const res = await execute({ code: "1", context_id: "x", language: "python" });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe("Only one of context_id or language can be provided");
  });

  it("answers an unknown context with 404 Context <id> not found", async () => {
    const res = await execute({ code: "1", context_id: "no-such-context" });
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("Context no-such-context not found");
  });

  it("refuses a body without code, or with env vars that are not strings, 422", async () => {
    expect((await execute({ language: "python" })).status).toBe(422);
    expect((await execute({ code: "1", env_vars: { A: 1 } })).status).toBe(422);
  });

  it("refuses an env var name a process cannot carry, 400", async () => {
    expect((await execute({ code: "1", env_vars: { "A=B": "x" } })).status).toBe(400);
  });

  it("refuses /execute without the token, 401", async () => {
    expect((await execute({ code: "1" }, JSON_HEADERS)).status).toBe(401);
    expect((await execute({ code: "1" }, { ...JSON_HEADERS, "x-access-token": "wrong" })).status).toBe(401);
  });

  it("answers an unknown language with 400", async () => {
    expect((await execute({ code: "1", language: "cobol" })).status).toBe(400);
  });
});

describe("e2b interpreter: /contexts without the token", () => {
  it("creates, lists, restarts and removes contexts, as the default user", async () => {
    const res = await fetch(`${agent.url}/contexts`, { method: "POST", headers: { ...JSON_HEADERS, "x-user": "root" }, body: JSON.stringify({ cwd: "/tmp" }) });
    expect(res.status).toBe(200);
    const context = (await res.json()) as { id: string; language: string; cwd: string };
    expect(context).toEqual({ id: expect.any(String), language: "python", cwd: "/tmp" });

    const listed = (await (await fetch(`${agent.url}/contexts`)).json()) as { id: string; language: string }[];
    expect(listed.at(-1)).toEqual(context);
    expect(listed.map((item) => item.language)).toEqual(expect.arrayContaining(["python", "javascript"]));

    // The header named root; the context runs as the default user all the same.
    const who = await lines(await execute({ code: "import getpass\ngetpass.getuser()", context_id: context.id }));
    expect(who.find((line) => line.type === "result")?.text).toBe(VICTIM);

    const restart = await fetch(`${agent.url}/contexts/${context.id}/restart`, { method: "POST", headers: JSON_HEADERS });
    expect(restart.status).toBe(200);
    expect(await restart.json()).toBeNull();
    const removed = await fetch(`${agent.url}/contexts/${context.id}`, { method: "DELETE", headers: JSON_HEADERS });
    expect(removed.status).toBe(200);
    const again = await fetch(`${agent.url}/contexts/${context.id}`, { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(await again.text()).toBe(`Context ${context.id} not found`);
  });

  it("neither sees nor touches contexts of other users, or of the Connect API", async () => {
    const asRoot = (await (await fetch(`${agent.url}/contexts`, { method: "POST", headers: { ...WITH_TOKEN, "x-user": "root" }, body: "{}" })).json()) as {
      id: string;
    };
    const connectId = (await client(ContextService, agent.url).createContext({ language: "python", cwd: "" }, { headers: AUTH })).id;

    const tokenless = ((await (await fetch(`${agent.url}/contexts`)).json()) as { id: string }[]).map((item) => item.id);
    expect(tokenless).not.toContain(asRoot.id);
    expect(tokenless).not.toContain(connectId);
    for (const id of [asRoot.id, connectId]) {
      expect((await fetch(`${agent.url}/contexts/${id}/restart`, { method: "POST" })).status).toBe(404);
      expect((await fetch(`${agent.url}/contexts/${id}`, { method: "DELETE" })).status).toBe(404);
    }

    // With the token, root sees its own E2B context (and still never the Connect one in the listing).
    const withToken = ((await (await fetch(`${agent.url}/contexts`, { headers: { ...AUTH, "x-user": "root" } })).json()) as { id: string }[]).map(
      (item) => item.id,
    );
    expect(withToken).toContain(asRoot.id);
    expect(withToken).not.toContain(connectId);
    expect((await fetch(`${agent.url}/contexts/${asRoot.id}`, { method: "DELETE", headers: { ...AUTH, "x-user": "root" } })).status).toBe(200);
    expect((await fetch(`${agent.url}/contexts/${connectId}`, { method: "DELETE", headers: { ...AUTH, "x-user": "root" } })).status).toBe(200);
  });

  it("never shuts down another caller's context to make room", async () => {
    const full = await startTestAgent({ defaultUser: VICTIM, maxContexts: 2 });
    try {
      const asRoot = { ...WITH_TOKEN, "x-user": "root" };
      const made: string[] = [];
      for (let i = 0; i < 2; i++) {
        made.push(((await (await fetch(`${full.url}/contexts`, { method: "POST", headers: asRoot, body: "{}" })).json()) as { id: string }).id);
      }
      const refused = await fetch(`${full.url}/contexts`, { method: "POST", headers: JSON_HEADERS, body: "{}" });
      expect(refused.status).toBe(503);
      expect(await refused.text()).toContain("not this caller's to shut down");
      const listed = ((await (await fetch(`${full.url}/contexts`, { headers: asRoot })).json()) as { id: string }[]).map((item) => item.id);
      expect(listed).toEqual(made);
    } finally {
      await full.close();
    }
  });

  it("refuses a wrong token, 401", async () => {
    expect((await fetch(`${agent.url}/contexts`, { headers: { "x-access-token": "wrong" } })).status).toBe(401);
  });
});

describe("e2b interpreter: its own port", () => {
  it("serves the interpreter and /health only, with its default contexts ready", async () => {
    const port = await freePort();
    const own = await startTestAgent({ interpreterPort: port });
    try {
      expect(own.interpreterUrl).toBe(`http://127.0.0.1:${port}`);
      const url = own.interpreterUrl!;
      expect((await fetch(`${url}/health`)).status).toBe(200);
      const listed = (await (await fetch(`${url}/contexts`)).json()) as { language: string }[];
      expect(listed.map((item) => item.language)).toEqual(["python", "javascript"]);
      const body = await lines(await execute({ code: "6 * 7" }, WITH_TOKEN, url));
      expect(body.find((line) => line.type === "result")?.text).toBe("42");

      const download = await fetch(`${url}/download/etc/hostname`, { headers: AUTH });
      expect(download.status).toBe(404);
      const rpc = await fetch(`${url}/sandboxagent.Filesystem/Stat`, { method: "POST", headers: WITH_TOKEN, body: JSON.stringify({ path: "/" }) });
      expect(rpc.status).toBe(404);

      // A second agent finds the port taken and goes on without it.
      const second = await startTestAgent({ interpreterPort: port });
      expect(second.interpreterUrl).toBeUndefined();
      expect((await fetch(`${second.url}/health`)).status).toBe(200);
      await second.close();
    } finally {
      await own.close();
    }
  });
});
