/**
 * Kernel events to ExecuteResponse frames, in one place for every kind of kernel.
 *
 * - The value of the cell's trailing expression (execute_result) is held back and merged into the
 *   summary result that ends every successful execution, so it is sent once, as the main result.
 * - Displays are results with isMainResult false. A display id travels in `extra.display_id`; an
 *   update_display_data is a new result with the same id and `extra.display_update = "true"`.
 * - The stream is append-only, so `clear_output` cannot take back what was sent: the next result
 *   after it carries `extra.clear_output = "true"`, meaning "replaces everything displayed so far".
 * - MIME types with a Result field land there; any other goes to `extra` under its MIME type,
 *   JSON-encoded.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ExecuteResponseSchema, ResultSchema, type ExecuteResponse } from "../../gen/sandboxagent/api_pb.js";
import type { KernelEvent, MimeBundle } from "../../kernels/kernel.js";
import { CHART_MIME, chartOfJson, toChart } from "./chart.js";

type ResultInit = MessageInitShape<typeof ResultSchema>;
type TextField = "text" | "html" | "markdown" | "svg" | "png" | "jpeg" | "pdf" | "latex" | "javascript";

const TEXT_FIELDS: Readonly<Record<string, TextField>> = {
  "text/plain": "text",
  "text/html": "html",
  "text/markdown": "markdown",
  "image/svg+xml": "svg",
  "image/png": "png",
  "image/jpeg": "jpeg",
  "application/pdf": "pdf",
  "text/latex": "latex",
  "application/javascript": "javascript",
  "text/javascript": "javascript",
};

/** Tabular data: pandas' Table Schema bundle (from the Python start-up formatter) and its kin. */
export const DATA_MIMES: ReadonlySet<string> = new Set(["application/vnd.dataresource+json", "application/vnd.dataframe+json"]);
/** Base64 payloads sometimes end with a newline; the SDKs decode them as they are. */
const BASE64_FIELDS = new Set<TextField>(["png", "jpeg", "pdf"]);

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences start with control characters.
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007]*\u0007/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function asText(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(String).join("");
  return JSON.stringify(value) ?? "";
}

/** The text field a MIME type fills (the same names in both faces), with its text; undefined for other types. */
export function textFieldOf(mime: string, value: unknown): { readonly field: TextField; readonly text: string } | undefined {
  const field = TEXT_FIELDS[mime];
  if (field === undefined) return undefined;
  const text = asText(value);
  return { field, text: BASE64_FIELDS.has(field) ? text.trim() : text };
}

/** Maps a MIME bundle onto Result fields; `extra` keeps what has no field of its own. */
export function resultFields(data: MimeBundle): ResultInit {
  const result: ResultInit = {};
  const extra: Record<string, string> = {};
  for (const [mime, value] of Object.entries(data)) {
    const text = textFieldOf(mime, value);
    if (text !== undefined) {
      result[text.field] = text.text;
    } else if (mime === "application/json") {
      // Kernels send an object (as the protocol wants) or its JSON text (tslab, IRkernel): the
      // field carries JSON text either way, never a string quoted twice.
      const parsed = typeof value === "string" ? parseJson(value) : value;
      result.json = typeof value === "string" && parsed !== undefined ? value : JSON.stringify(value);
      // A figure's own chart (CHART_MIME, below) wins over a JSON description in the same bundle.
      result.chart ??= chartOfJson(parsed);
    } else if (DATA_MIMES.has(mime)) {
      result.data = typeof value === "string" ? value : JSON.stringify(value);
    } else if (mime === CHART_MIME) {
      const chart = toChart(value);
      if (chart !== undefined) result.chart = chart;
    } else {
      extra[mime] = JSON.stringify(value);
    }
  }
  if (Object.keys(extra).length > 0) result.extra = extra;
  return result;
}

export interface Summary {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly executionCount: number;
}

/**
 * What run.ts tells a wire face about one execution, in the kernel's own terms: each face (the
 * Connect ExecuteResponse frames here, E2B's NDJSON lines in e2b/interpreter/) maps them its way.
 */
export interface ExecutionSink {
  readonly onEvent: (event: KernelEvent) => void;
  /** Set once the code asked for input, which executions cannot give: the execution counts as failed. */
  readonly refusedInput: boolean;
  error(name: string, value: string, traceback: string): void;
  stderr(content: string): void;
  finishOk(summary: Summary): void;
  /** `executionCount` when the kernel said it (a cell that raised still has one). */
  finishFailed(executionCount?: number): void;
}

/** The error an execution that asked for input ends with, the same in every face. */
export function inputRefusal(prompt: string): string {
  return (
    `the code asked for input${prompt ? ` (${JSON.stringify(prompt)})` : ""}, but executions cannot read stdin; ` +
    "it was answered with an empty line. Pass data in the code, a file or envVars instead."
  );
}

export class ResultStream implements ExecutionSink {
  private heldMain: { data: MimeBundle; executionCount: number } | undefined;
  private clearPending = false;
  /** The kernel asked for input (and got an empty line): the execution counts as failed. */
  refusedInput = false;

  constructor(private readonly emit: (response: ExecuteResponse) => void) {}

  private result(init: ResultInit): void {
    this.emit(create(ExecuteResponseSchema, { event: { case: "result", value: create(ResultSchema, init) } }));
  }

  private withClear(init: ResultInit): ResultInit {
    if (!this.clearPending) return init;
    this.clearPending = false;
    return { ...init, extra: { ...init.extra, clear_output: "true" } };
  }

  error(name: string, value: string, traceback: string): void {
    this.emit(create(ExecuteResponseSchema, { event: { case: "error", value: { name, value, traceback } } }));
  }

  stderr(content: string): void {
    this.emit(create(ExecuteResponseSchema, { event: { case: "stderr", value: { content } } }));
  }

  readonly onEvent = (event: KernelEvent): void => {
    switch (event.kind) {
      case "stdout":
      case "stderr":
        if (event.text !== "") this.emit(create(ExecuteResponseSchema, { event: { case: event.kind, value: { content: event.text } } }));
        return;
      case "result":
        // Kernels like IRkernel report every visible top-level value: all but the last are ordinary results.
        if (this.heldMain !== undefined) this.result(this.withClear({ ...resultFields(this.heldMain.data), executionCount: this.heldMain.executionCount }));
        this.heldMain = { data: event.data, executionCount: event.executionCount };
        return;
      case "display": {
        const init = resultFields(event.data);
        const extra: Record<string, string> = { ...init.extra };
        if (event.displayId !== undefined) extra.display_id = event.displayId;
        if (event.update === true) extra.display_update = "true";
        this.result(this.withClear({ ...init, isMainResult: false, extra }));
        return;
      }
      case "error":
        this.error(event.name, stripAnsi(event.value), stripAnsi(event.traceback.join("\n")));
        return;
      case "clear":
        this.clearPending = true;
        return;
      case "input_request":
        this.refusedInput = true;
        this.error("StdinNotImplementedError", inputRefusal(event.prompt), "");
        return;
    }
  };

  /** Ends a successful execution: one main result, with the trailing expression's value if any. */
  finishOk(summary: Summary): void {
    const held = this.heldMain;
    this.heldMain = undefined;
    this.result(
      this.withClear({
        ...(held === undefined ? {} : resultFields(held.data)),
        isMainResult: true,
        exitCode: 0,
        executionCount: summary.executionCount || held?.executionCount || 0,
        startedAt: timestampFromDate(summary.startedAt),
        finishedAt: timestampFromDate(summary.finishedAt),
      }),
    );
  }

  /** Ends a failed execution: a value computed before the failure still goes out, as it was. */
  finishFailed(): void {
    const held = this.heldMain;
    this.heldMain = undefined;
    if (held !== undefined) this.result(this.withClear({ ...resultFields(held.data), isMainResult: true, executionCount: held.executionCount }));
  }
}
