/**
 * Kernel events to E2B's NDJSON lines (contract 3.3), the E2B face's counterpart of
 * services/execution/results.ts, whose field names and chart detection it shares.
 *
 * - A result line carries the Result fields at the top level, `is_main_result`, and the MIME types
 *   without a field in `extra`. Nothing else goes at the top level: the JS SDK turns every unknown
 *   top-level key into `Result.extra`.
 * - `text` loses one pair of surrounding quotes (a Python string's repr `'bar'` reads `bar`).
 * - `json` is the object; `chart` and `data` are plain JSON in E2B's snake_case shapes.
 * - As in the Connect face, the value of the cell's trailing expression is held until the end so
 *   that only the last one (IRkernel reports several) is the main result.
 */
import type { KernelEvent, MimeBundle } from "../../kernels/kernel.js";
import { CHART_MIME, chartOfJson } from "../../services/execution/chart.js";
import { DATA_MIMES, type ExecutionSink, inputRefusal, parseJson, stripAnsi, type Summary, textFieldOf } from "../../services/execution/results.js";
import type { Line } from "./ndjson.js";

/** E2B's own MIME types, which a kernel set up like E2B's template may send. */
const E2B_CHART_MIME = "e2b/chart";
const E2B_DATA_MIME = "e2b/data";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

function stripQuotes(text: string): string {
  if (text.length >= 2 && (text[0] === "'" || text[0] === '"') && text.at(-1) === text[0]) return text.slice(1, -1);
  return text;
}

/**
 * The agent's chart (kernels/jupyter/python/agent_startup.py keeps axes in `extra`) in E2B's
 * shape, where they sit at the top: `{type, title, elements, x_label, …}`.
 */
export function e2bChart(raw: unknown): Json | undefined {
  if (!isObject(raw) || typeof raw.type !== "string") return undefined;
  const { extra, elements, ...rest } = raw;
  const list = Array.isArray(elements) ? elements : [];
  return {
    ...(isObject(extra) ? extra : {}),
    ...rest,
    elements: raw.type === "superchart" ? list.map(e2bChart).filter((chart) => chart !== undefined) : list,
  };
}

/**
 * A Table Schema data resource (pandas' `orient="table"`, what the agent's formatter sends) as
 * E2B's `data`: `to_dict(orient="list")`, column name to values, without the index columns.
 */
export function e2bData(raw: unknown): unknown {
  if (!isObject(raw) || !isObject(raw.schema) || !Array.isArray(raw.schema.fields) || !Array.isArray(raw.data)) return raw;
  const rows: unknown[] = raw.data;
  const index = new Set(Array.isArray(raw.schema.primaryKey) ? raw.schema.primaryKey : []);
  const names = raw.schema.fields
    .map((field) => (isObject(field) ? field.name : undefined))
    .filter((name): name is string => typeof name === "string" && !index.has(name));
  return Object.fromEntries(names.map((name) => [name, rows.map((row) => (isObject(row) ? row[name] : undefined) ?? null)]));
}

export function resultLine(data: MimeBundle, isMainResult: boolean): Line {
  const line: Json = {};
  const extra: Json = {};
  let ownChart: Json | undefined;
  for (const [mime, value] of Object.entries(data)) {
    const text = textFieldOf(mime, value);
    if (text !== undefined) {
      line[text.field] = text.field === "text" ? stripQuotes(text.text) : text.text;
    } else if (mime === "application/json") {
      // Kernels send an object (as the protocol wants) or its JSON text (tslab, IRkernel).
      const parsed = typeof value === "string" ? (parseJson(value) ?? value) : value;
      line.json = parsed;
      // A JSON display that describes a chart is one, in any language; it is already E2B's shape.
      if (chartOfJson(parsed) !== undefined) line.chart ??= parsed;
    } else if (mime === CHART_MIME || mime === E2B_CHART_MIME) {
      ownChart = mime === CHART_MIME ? e2bChart(value) : isObject(value) ? value : undefined;
    } else if (DATA_MIMES.has(mime)) {
      line.data = e2bData(value);
    } else if (mime === E2B_DATA_MIME) {
      line.data = value;
    } else {
      extra[mime] = value;
    }
  }
  // A figure's own chart wins over a JSON description in the same bundle.
  if (ownChart !== undefined) line.chart = ownChart;
  return { type: "result", ...line, extra, is_main_result: isMainResult };
}

const now = (): string => new Date().toISOString();

export class E2bResultSink implements ExecutionSink {
  private held: MimeBundle | undefined;
  refusedInput = false;

  constructor(private readonly send: (line: Line) => void) {}

  error(name: string, value: string, traceback: string): void {
    this.send({ type: "error", name, value, traceback });
  }

  stderr(content: string): void {
    this.send({ type: "stderr", text: content, timestamp: now() });
  }

  readonly onEvent = (event: KernelEvent): void => {
    switch (event.kind) {
      case "stdout":
      case "stderr":
        if (event.text !== "") this.send({ type: event.kind, text: event.text, timestamp: now() });
        return;
      case "result":
        if (this.held !== undefined) this.send(resultLine(this.held, false));
        this.held = event.data;
        return;
      case "display":
        this.send(resultLine(event.data, false));
        return;
      case "error":
        this.error(event.name, stripAnsi(event.value), stripAnsi(event.traceback.join("\n")));
        return;
      case "clear":
        // E2B's stream has no way to take back what was shown, and its server ignores clear_output.
        return;
      case "input_request":
        this.refusedInput = true;
        this.error("StdinNotImplementedError", inputRefusal(event.prompt), "");
        return;
    }
  };

  private finish(executionCount: number | undefined): void {
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) this.send(resultLine(held, true));
    if (executionCount !== undefined && executionCount > 0) this.send({ type: "number_of_executions", execution_count: executionCount });
  }

  finishOk(summary: Summary): void {
    this.finish(summary.executionCount);
  }

  finishFailed(executionCount?: number): void {
    this.finish(executionCount);
  }
}
