import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Process, StreamInputRequestSchema, type StreamInputRequest } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, startTestAgent, type TestAgent, type TransportName } from "../../helpers/agent.js";
import { collect } from "../../helpers/process.js";

let agent: TestAgent;
beforeAll(async () => {
  agent = await startTestAgent();
});
afterAll(async () => {
  await agent?.close();
});

const byPid = (pid: number) => ({ selector: { case: "pid" as const, value: pid } });
const stdin = (text: string | Uint8Array) => ({ input: { case: "stdin" as const, value: typeof text === "string" ? Buffer.from(text) : text } });
const ptyInput = (text: string) => ({ input: { case: "pty" as const, value: Buffer.from(text) } });

/** Starts a process and hands back its pid and the promise of its whole stream. */
async function launch(c: Client<typeof Process>, cmd: string, args: string[], pty = false) {
  let started!: (pid: number) => void;
  const pid = new Promise<number>((resolve) => (started = resolve));
  const request = { process: { cmd, args, envs: {} }, pty: pty ? { size: { cols: 80, rows: 24 } } : undefined };
  const done = collect(c.start(request, { headers: AUTH }), (so) => so.pid !== undefined && started(so.pid));
  return { pid: await pid, done };
}

describe.each(["connect-json-h1", "connect-h2"] as TransportName[])("SendInput and CloseStdin over %s", (transport) => {
  it("feeds stdin in order, and CloseStdin sends EOF so that cat ends", async () => {
    const c = client(Process, agent.url, transport);
    const { pid, done } = await launch(c, "cat", []);
    for (const part of ["hello ", "wörld", "\n", "bye\n"]) await c.sendInput({ process: byPid(pid), input: stdin(part) }, { headers: AUTH });
    await c.closeStdin({ process: byPid(pid) }, { headers: AUTH });
    const got = await done;
    expect(got.stdout.toString()).toBe("hello wörld\nbye\n");
    expect(got.end).toMatchObject({ exitCode: 0, status: "exit status 0" });
  });
});

describe("input", () => {
  const c = () => client(Process, agent.url, "connect-h2");

  it("passes large binary input through intact", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const { pid, done } = await launch(c(), "sha256sum", []);
    for (let offset = 0; offset < data.length; offset += 512 * 1024) {
      await c().sendInput({ process: byPid(pid), input: stdin(data.subarray(offset, offset + 512 * 1024)) }, { headers: AUTH });
    }
    await c().closeStdin({ process: byPid(pid) }, { headers: AUTH });
    const got = await done;
    expect(got.stdout.toString().split(" ")[0]).toBe(createHash("sha256").update(data).digest("hex"));
  });

  it("StreamInput over HTTP/2: start{process} first, then data in order", async () => {
    const { pid, done } = await launch(c(), "cat", []);
    const parts = Array.from({ length: 50 }, (_, i) => `chunk ${i}\n`);
    async function* requests(): AsyncGenerator<StreamInputRequest> {
      yield create(StreamInputRequestSchema, { event: { case: "start", value: { process: byPid(pid) } } });
      yield create(StreamInputRequestSchema, { event: { case: "keepalive", value: {} } });
      for (const part of parts) yield create(StreamInputRequestSchema, { event: { case: "data", value: { input: stdin(part) } } });
    }
    await c().streamInput(requests(), { headers: AUTH });
    await c().closeStdin({ process: byPid(pid) }, { headers: AUTH });
    expect((await done).stdout.toString()).toBe(parts.join(""));
  });

  it("StreamInput refuses data before start, and an unknown process", async () => {
    const { pid, done } = await launch(c(), "cat", []);
    async function* dataFirst(): AsyncGenerator<StreamInputRequest> {
      yield create(StreamInputRequestSchema, { event: { case: "data", value: { input: stdin("x") } } });
    }
    const err = await c()
      .streamInput(dataFirst(), { headers: AUTH })
      .catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    async function* unknown(): AsyncGenerator<StreamInputRequest> {
      yield create(StreamInputRequestSchema, { event: { case: "start", value: { process: byPid(4_000_000) } } });
    }
    const missing = await c()
      .streamInput(unknown(), { headers: AUTH })
      .catch((e: unknown) => e);
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    await c().closeStdin({ process: byPid(pid) }, { headers: AUTH });
    expect((await done).end?.exitCode).toBe(0);
  });

  it("refuses the wrong kind of input for the process, and input after stdin was closed", async () => {
    const pipe = await launch(c(), "cat", []);
    const pty = await launch(c(), "cat", [], true);
    const failures = [
      () => c().sendInput({ process: byPid(pipe.pid), input: ptyInput("x") }, { headers: AUTH }),
      () => c().sendInput({ process: byPid(pty.pid), input: stdin("x") }, { headers: AUTH }),
      () => c().closeStdin({ process: byPid(pty.pid) }, { headers: AUTH }),
      () => c().update({ process: byPid(pipe.pid), pty: { size: { cols: 100, rows: 30 } } }, { headers: AUTH }),
    ];
    for (const failure of failures) {
      const err = await failure().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    }
    const none = await c()
      .sendInput({ process: byPid(pipe.pid), input: {} }, { headers: AUTH })
      .catch((e: unknown) => e);
    expect((none as ConnectError).code).toBe(Code.InvalidArgument);

    await c().closeStdin({ process: byPid(pipe.pid) }, { headers: AUTH });
    const afterClose = await c()
      .sendInput({ process: byPid(pipe.pid), input: stdin("late") }, { headers: AUTH })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // Either the stdin is closed, or cat has already exited and the process is gone.
    expect([Code.FailedPrecondition, Code.NotFound]).toContain((afterClose as ConnectError).code);
    expect((await pipe.done).end?.exitCode).toBe(0);
    await c().sendSignal({ process: byPid(pty.pid), signal: 9 }, { headers: AUTH });
    expect((await pty.done).end?.status).toBe("signal: killed");
  });
});
