/**
 * The E2B face's mapping of kernel output to NDJSON lines (contract 3.3), and its ASCII encoding.
 */
import { describe, expect, it } from "vitest";
import { normalizeLanguage } from "../../../src/e2b/interpreter/contexts.js";
import { asciiJson, type Line } from "../../../src/e2b/interpreter/ndjson.js";
import { E2bResultSink, e2bChart, e2bData, resultLine } from "../../../src/e2b/interpreter/result-lines.js";
import { CHART_MIME } from "../../../src/services/execution/chart.js";

describe("asciiJson", () => {
  it("escapes every character from U+007F up, and stays the same JSON", () => {
    const value = { text: "é ✓ 日本 🎉 \u007f ~" };
    const encoded = asciiJson(value);
    expect([...encoded].every((char) => char.charCodeAt(0) < 0x7f)).toBe(true);
    expect(JSON.parse(encoded)).toEqual(value);
  });
});

describe("resultLine", () => {
  it("strips one pair of quotes from text/plain, of either kind", () => {
    expect(resultLine({ "text/plain": "'bar'" }, true).text).toBe("bar");
    expect(resultLine({ "text/plain": '"bar"' }, true).text).toBe("bar");
    expect(resultLine({ "text/plain": "''x''" }, true).text).toBe("'x'");
    expect(resultLine({ "text/plain": "'" }, true).text).toBe("'");
    expect(resultLine({ "text/plain": "42" }, true).text).toBe("42");
  });

  it("gives json as an object, whether the kernel sent an object or its text", () => {
    expect(resultLine({ "application/json": { a: 1 } }, false).json).toEqual({ a: 1 });
    expect(resultLine({ "application/json": '{"a":1}' }, false).json).toEqual({ a: 1 });
  });

  it("keeps other MIME types in extra, and nothing else at the top level", () => {
    expect(resultLine({ "text/html": "<b/>", "application/x-custom": { k: 1 } }, false)).toEqual({
      type: "result",
      html: "<b/>",
      extra: { "application/x-custom": { k: 1 } },
      is_main_result: false,
    });
  });

  it("takes a JSON display that describes a chart as the chart, as it is", () => {
    const chart = { type: "bar", title: "t", elements: [{ label: "a", group: "g", value: "1" }] };
    expect(resultLine({ "application/json": chart }, false).chart).toEqual(chart);
  });

  it("prefers a figure's own chart to a JSON description", () => {
    const line = resultLine({ "application/json": { type: "bar", elements: [] }, [CHART_MIME]: { type: "pie", title: "p", elements: [], extra: {} } }, false);
    expect(line.chart).toEqual({ type: "pie", title: "p", elements: [] });
  });
});

describe("e2bChart", () => {
  it("lifts the axes out of extra, in nested charts too", () => {
    const line = { type: "line", title: "l", elements: [{ label: "s", points: [[1, 2]] }], extra: { x_label: "x (s)", x_unit: "s" } };
    expect(e2bChart(line)).toEqual({ type: "line", title: "l", elements: [{ label: "s", points: [[1, 2]] }], x_label: "x (s)", x_unit: "s" });
    expect(e2bChart({ type: "superchart", title: "all", elements: [line], extra: {} })).toEqual({
      type: "superchart",
      title: "all",
      elements: [e2bChart(line)],
    });
  });
});

describe("e2bData", () => {
  it("turns a Table Schema resource into columns, without the index", () => {
    const resource = {
      schema: { fields: [{ name: "index" }, { name: "a" }, { name: "b" }], primaryKey: ["index"] },
      data: [
        { index: 0, a: 1, b: "x" },
        { index: 1, a: 2, b: "y" },
      ],
    };
    expect(e2bData(resource)).toEqual({ a: [1, 2], b: ["x", "y"] });
  });

  it("passes anything else through", () => {
    expect(e2bData({ a: [1] })).toEqual({ a: [1] });
  });
});

describe("E2bResultSink", () => {
  it("makes only the last trailing value the main result, and reports the execution count", () => {
    const lines: Line[] = [];
    const sink = new E2bResultSink((line) => lines.push(line));
    sink.onEvent({ kind: "result", data: { "text/plain": "1" }, executionCount: 3 });
    sink.onEvent({ kind: "result", data: { "text/plain": "2" }, executionCount: 3 });
    sink.finishOk({ startedAt: new Date(), finishedAt: new Date(), executionCount: 3 });
    expect(lines).toEqual([
      { type: "result", text: "1", extra: {}, is_main_result: false },
      { type: "result", text: "2", extra: {}, is_main_result: true },
      { type: "number_of_executions", execution_count: 3 },
    ]);
  });

  it("gives errors a traceback of one string, without colours", () => {
    const lines: Line[] = [];
    new E2bResultSink((line) => lines.push(line)).onEvent({ kind: "error", name: "E", value: "\u001b[31mv\u001b[0m", traceback: ["a", "b"] });
    expect(lines).toEqual([{ type: "error", name: "E", value: "v", traceback: "a\nb" }]);
  });
});

describe("normalizeLanguage", () => {
  it("trims, lowers and spells out js and ts; python when absent", () => {
    expect(normalizeLanguage(" JS ")).toBe("javascript");
    expect(normalizeLanguage("ts")).toBe("typescript");
    expect(normalizeLanguage(undefined)).toBe("python");
    expect(normalizeLanguage("R")).toBe("r");
  });
});
