/**
 * The pure pieces of execution, without kernels: message signing, MIME mapping, chart conversion,
 * the per-context queue, the output cap, the language table and kernelspec discovery.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExecuteResponse } from "../../../src/gen/sandboxagent/api_pb.js";
import { KernelCatalog, LanguageUnavailableError, UnknownLanguageError } from "../../../src/kernels/catalog.js";
import type { KernelFactory } from "../../../src/kernels/kernel.js";
import { errorFromReply } from "../../../src/kernels/jupyter/jupyter-kernel.js";
import { findKernelSpecs } from "../../../src/kernels/jupyter/kernelspecs.js";
import { decode, encode, newHeader, WireError } from "../../../src/kernels/jupyter/wire.js";
import { loadLanguageTable, LanguageTableError } from "../../../src/kernels/languages.js";
import { toChart } from "../../../src/services/execution/chart.js";
import { FrameQueue, MAX_PENDING_TEXT } from "../../../src/services/execution/frames.js";
import { SerialQueue } from "../../../src/services/execution/queue.js";
import { ResultStream, resultFields } from "../../../src/services/execution/results.js";
import { tempDir } from "../../helpers/agent.js";

let dir: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  dir = await tempDir("exec-units-");
});
afterAll(async () => {
  await dir?.cleanup();
});

describe("wire protocol", () => {
  const key = Buffer.from("secret-key");
  const message = () => ({
    header: newHeader("execute_request", "session-1", "root"),
    parentHeader: {},
    metadata: {},
    content: { code: "1+1" },
  });

  it("round-trips a signed message, routing ids and buffers included", () => {
    const sent = message();
    const frames = [Buffer.from("routing-id"), ...encode(key, { ...sent, buffers: [Buffer.from([1, 2])] })];
    const got = decode(key, frames);
    expect(got.header).toEqual(sent.header);
    expect(got.content).toEqual({ code: "1+1" });
    expect(got.buffers).toEqual([Buffer.from([1, 2])]);
    expect(got.header.version).toBe("5.3");
  });

  it("refuses a message signed with another key, or tampered with", () => {
    const frames = encode(key, message());
    expect(() => decode(Buffer.from("other-key"), frames)).toThrow(WireError);
    const tampered = [...frames];
    tampered[5] = Buffer.from(JSON.stringify({ code: "import os; os.system('x')" }));
    expect(() => decode(key, tampered)).toThrow(WireError);
  });

  it("refuses frames without the delimiter", () => {
    expect(() => decode(key, [Buffer.from("{}")])).toThrow(WireError);
  });
});

describe("results", () => {
  it("maps MIME types onto fields, JSON-encodes json, data and unknown types", () => {
    const fields = resultFields({
      "text/plain": "t",
      "text/html": "<b>",
      "image/png": "iVBOR\n",
      "application/json": { a: 1 },
      "application/vnd.dataresource+json": { data: [] },
      "application/x-thing": "raw",
    });
    expect(fields).toMatchObject({ text: "t", html: "<b>", png: "iVBOR", json: '{"a":1}', data: '{"data":[]}' });
    expect(fields.extra).toEqual({ "application/x-thing": '"raw"' });
  });

  it("keeps JSON sent as text as it is, and reads a chart description from it", () => {
    const chart = '{"type":"bar","title":"Ventes — 売上","elements":[{"label":"a","group":"g","value":3}]}';
    const fields = resultFields({ "application/json": chart });
    expect(fields.json).toBe(chart);
    expect(fields.chart).toMatchObject({ type: "bar", title: "Ventes — 売上" });
    expect(resultFields({ "application/json": "not json" }).json).toBe('"not json"');
    expect(resultFields({ "application/json": { type: "histogram", elements: [] } }).chart).toBeUndefined();
  });

  it("prefers a figure's own chart to a JSON description in the same bundle", () => {
    const figure = { type: "pie", title: "figure", elements: [] };
    const described = { type: "line", title: "described", elements: [] };
    expect(resultFields({ "application/vnd.sandbox-agent.chart+json": figure, "application/json": described }).chart?.title).toBe("figure");
    expect(resultFields({ "application/json": described, "application/vnd.sandbox-agent.chart+json": figure }).chart?.title).toBe("figure");
  });

  it("sends the trailing value once, merged into the summary, and flags the result after a clear", () => {
    const frames: ExecuteResponse[] = [];
    const stream = new ResultStream((frame) => frames.push(frame));
    stream.onEvent({ kind: "display", data: { "text/plain": "a" } });
    stream.onEvent({ kind: "clear", wait: true });
    stream.onEvent({ kind: "display", data: { "text/plain": "b" }, displayId: "d" });
    stream.onEvent({ kind: "result", data: { "text/plain": "42" }, executionCount: 3 });
    stream.finishOk({ startedAt: new Date(0), finishedAt: new Date(1), executionCount: 3 });
    const results = frames.map((frame) => (frame.event.case === "result" ? frame.event.value : undefined));
    expect(results.map((r) => [r?.text, r?.isMainResult])).toEqual([
      ["a", false],
      ["b", false],
      ["42", true],
    ]);
    expect(results[1]?.extra).toEqual({ clear_output: "true", display_id: "d" });
    expect(results[2]?.executionCount).toBe(3);
    expect(results[2]?.exitCode).toBe(0);
  });

  it("strips ANSI codes from tracebacks and joins their lines", () => {
    const frames: ExecuteResponse[] = [];
    new ResultStream((frame) => frames.push(frame)).onEvent({
      kind: "error",
      name: "ValueError",
      value: "\u001b[31mbad\u001b[0m",
      traceback: ["\u001b[1;31mline 1\u001b[0m", "line 2"],
    });
    expect(frames[0]?.event.value).toMatchObject({ name: "ValueError", value: "bad", traceback: "line 1\nline 2" });
  });

  it("describes a failure that only a kernel's stderr explains", () => {
    expect(errorFromReply({ status: "error" }, "evalmachine:1\nthrow x\n\nTypeError: bad thing\n    at foo")).toMatchObject({
      name: "TypeError",
      value: "bad thing",
    });
    expect(errorFromReply({ status: "error", ename: "KeyError", evalue: "'k'" }, "")).toMatchObject({ name: "KeyError", value: "'k'" });
    expect(errorFromReply({ status: "error" }, "1:5 - Type 'string' is not assignable\n")).toMatchObject({
      name: "Error",
      value: "1:5 - Type 'string' is not assignable",
    });
  });
});

describe("chart conversion", () => {
  it("builds nested charts, numeric and text points, and string extras", () => {
    const chart = toChart({
      type: "superchart",
      title: "all",
      elements: [
        {
          type: "line",
          title: "l",
          elements: [
            {
              label: "s",
              points: [
                [1, "nan"],
                ["2024-01-01", 2],
              ],
            },
          ],
          extra: { x_scale: "linear" },
        },
        { type: "pie", title: "p", elements: [{ label: "a", angle: 90, radius: 1 }], extra: {} },
      ],
      extra: {},
    });
    expect(chart?.type).toBe("superchart");
    const [line, pie] = chart!.elements.map((e) => (e.element.case === "nestedChart" ? e.element.value : undefined));
    const series = line?.elements[0]?.element;
    expect(series?.case).toBe("pointData");
    if (series?.case !== "pointData") return;
    expect(series.value.points.map((p) => [p.xValue.case, p.yValue.case])).toEqual([
      ["xNum", "yStr"],
      ["xStr", "yNum"],
    ]);
    expect(line?.extra).toEqual({ x_scale: "linear" });
    expect(pie?.elements[0]?.element).toMatchObject({ case: "pieData", value: { label: "a", angle: 90, radius: 1 } });
  });

  it("ignores what is not a chart", () => {
    expect(toChart("nope")).toBeUndefined();
    expect(toChart({ title: "no type" })).toBeUndefined();
  });
});

describe("per-context queue", () => {
  it("runs in arrival order, and a waiter that gives up passes its turn on", async () => {
    const queue = new SerialQueue();
    const order: string[] = [];
    const first = await queue.acquire(new AbortController().signal);
    const quitter = new AbortController();
    const gaveUp = queue.acquire(quitter.signal).then(
      () => order.push("quitter"),
      () => order.push("quitter left"),
    );
    const third = queue.acquire(new AbortController().signal).then((release) => {
      order.push("third");
      release();
    });
    expect(queue.length).toBe(3);
    quitter.abort(new Error("gone"));
    await gaveUp;
    order.push("first done");
    first();
    await third;
    expect(order).toEqual(["quitter left", "first done", "third"]);
    expect(queue.length).toBe(0);
  });
});

describe("output cap for slow readers", () => {
  it("drops output beyond the cap, says how much, and keeps the result last", async () => {
    const frames = new FrameQueue();
    const chunk = "x".repeat(1024 * 1024);
    const chunks = MAX_PENDING_TEXT / chunk.length + 8;
    for (let i = 0; i < chunks; i++) frames.push({ event: { case: "stdout", value: { content: chunk } } } as ExecuteResponse);
    frames.push({ event: { case: "result", value: { isMainResult: true } } } as ExecuteResponse);
    frames.end();
    const out: ExecuteResponse[] = [];
    for await (const frame of frames.drain()) out.push(frame);
    // Consecutive stdout merged into one frame, then the note, then the result.
    expect(out.map((f) => f.event.case)).toEqual(["stdout", "stderr", "result"]);
    expect(out[0]?.event.value).toMatchObject({ content: expect.any(String) });
    expect((out[0]!.event.value as { content: string }).content.length).toBe(MAX_PENDING_TEXT);
    expect((out[1]!.event.value as { content: string }).content).toContain(`${8 * chunk.length} characters of output were dropped`);
  });
});

describe("languages and kernelspecs", () => {
  const noDriver: KernelFactory & { available: () => Promise<boolean> } = {
    description: "bash (built-in)",
    available: async () => false,
    create: () => Promise.reject(new Error("unused")),
  };

  it("finds kernelspecs in the data path, first directory first", async () => {
    const first = join(dir.path, "first");
    const second = join(dir.path, "second");
    for (const [root, display] of [
      [first, "Mine"],
      [second, "Theirs"],
    ] as const) {
      await mkdir(join(root, "kernels", "mylang"), { recursive: true });
      await writeFile(
        join(root, "kernels", "mylang", "kernel.json"),
        JSON.stringify({ argv: ["x", "{connection_file}"], display_name: display, language: "MyLang", interrupt_mode: "message" }),
      );
    }
    await mkdir(join(second, "kernels", "broken"), { recursive: true });
    await writeFile(join(second, "kernels", "broken", "kernel.json"), "{not json");
    const specs = await findKernelSpecs([first, second]);
    expect([...specs.keys()]).toEqual(["mylang"]);
    expect(specs.get("mylang")).toMatchObject({ displayName: "Mine", language: "mylang", interruptMode: "message" });
  });

  it("resolves names through the table, an override file included, with clear errors", async () => {
    const file = join(dir.path, "languages.json");
    await writeFile(file, JSON.stringify({ mine: { kernelspecs: ["mylang"] }, m: "mine" }));
    const catalog = new KernelCatalog(loadLanguageTable(file), {
      builtins: { bash: noDriver, jshell: noDriver },
      dataDirs: () => [join(dir.path, "first")],
    });
    expect((await catalog.resolve("M")).spec?.name).toBe("mylang");
    const unknown = await catalog.resolve("cobol").catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(UnknownLanguageError);
    expect((unknown as Error).message).toContain("language");
    expect((unknown as Error).message).toContain("mine");
    const missing = await catalog.resolve("python").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(LanguageUnavailableError);
    expect((missing as Error).message).toContain('"python"');
    expect((missing as Error).message).toContain("mylang (Mine)");
    const noBash = await catalog.resolve("bash").catch((e: unknown) => e);
    expect(noBash).toBeInstanceOf(LanguageUnavailableError);
  });

  it("refuses a malformed override file", async () => {
    const file = join(dir.path, "bad-languages.json");
    await writeFile(file, JSON.stringify({ x: { builtin: "cobol" } }));
    expect(() => loadLanguageTable(file)).toThrow(LanguageTableError);
    await writeFile(file, JSON.stringify({ y: "no-such-language" }));
    expect(() => loadLanguageTable(file)).toThrow(LanguageTableError);
  });
});
