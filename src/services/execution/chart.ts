/**
 * Chart data to the proto `Chart`, from two sources: the Python start-up formatter's own MIME type
 * (kernels/jupyter/python/agent_startup.py, for matplotlib figures), and a JSON display in any
 * language whose object describes a chart (`{"type": "line", "title": …, "elements": […]}`), as
 * the platform's SDK documents. Anything off-shape inside a description is dropped rather than
 * reported: the display still reaches the caller as JSON (or the figure as PNG).
 */
import { create } from "@bufbuild/protobuf";
import { ChartElementSchema, ChartSchema, PointSchema, type Chart, type ChartElement, type Point } from "../../gen/sandboxagent/api_pb.js";

/** The MIME type the formatter registers for matplotlib figures. */
export const CHART_MIME = "application/vnd.sandbox-agent.chart+json";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const str = (value: unknown): string => (typeof value === "string" ? value : typeof value === "number" ? String(value) : "");
const num = (value: unknown): number => (typeof value === "number" ? value : Number(value) || 0);
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

function point(pair: unknown): Point {
  const [x, y] = list(pair);
  return create(PointSchema, {
    xValue: typeof x === "number" ? { case: "xNum", value: x } : { case: "xStr", value: str(x) },
    yValue: typeof y === "number" ? { case: "yNum", value: y } : { case: "yStr", value: str(y) },
  });
}

function element(type: string, raw: unknown): ChartElement | undefined {
  if (!isObject(raw)) return undefined;
  switch (type) {
    case "line":
    case "scatter":
      return create(ChartElementSchema, {
        element: { case: "pointData", value: { label: str(raw.label), points: list(raw.points).map(point) } },
      });
    case "bar":
      return create(ChartElementSchema, {
        element: { case: "barData", value: { label: str(raw.label), group: str(raw.group), value: str(raw.value) } },
      });
    case "pie":
      return create(ChartElementSchema, {
        element: { case: "pieData", value: { label: str(raw.label), angle: num(raw.angle), radius: num(raw.radius) } },
      });
    case "box_and_whisker":
      return create(ChartElementSchema, {
        element: {
          case: "boxWhiskerData",
          value: {
            label: str(raw.label),
            min: num(raw.min),
            firstQuartile: num(raw.first_quartile),
            median: num(raw.median),
            thirdQuartile: num(raw.third_quartile),
            max: num(raw.max),
            outliers: list(raw.outliers).map(num),
          },
        },
      });
    case "superchart": {
      const nested = toChart(raw);
      return nested === undefined ? undefined : create(ChartElementSchema, { element: { case: "nestedChart", value: nested } });
    }
    default:
      return undefined;
  }
}

const CHART_TYPES: ReadonlySet<string> = new Set(["line", "scatter", "bar", "pie", "box_and_whisker", "superchart"]);

/**
 * The chart a JSON display describes, if it describes one: a known `type` and a list of
 * `elements`. Any other JSON is only JSON.
 */
export function chartOfJson(value: unknown): Chart | undefined {
  if (!isObject(value) || typeof value.type !== "string" || !CHART_TYPES.has(value.type) || !Array.isArray(value.elements)) return undefined;
  // A description names its axes at the top, as E2B's chart JSON does; the proto keeps them in `extra`.
  const axes = Object.fromEntries(AXIS_FIELDS.filter((field) => value[field] !== undefined).map((field) => [field, value[field]]));
  return toChart({ ...value, extra: { ...axes, ...(isObject(value.extra) ? value.extra : {}) } });
}

const AXIS_FIELDS = ["x_label", "y_label", "x_unit", "y_unit", "x_scale", "y_scale", "x_ticks", "y_ticks", "x_tick_labels", "y_tick_labels"] as const;

export function toChart(raw: unknown): Chart | undefined {
  if (!isObject(raw) || typeof raw.type !== "string") return undefined;
  const type = raw.type;
  const elements = list(raw.elements)
    .map((item) => element(type, item))
    .filter((item): item is ChartElement => item !== undefined);
  const extra = isObject(raw.extra)
    ? Object.fromEntries(Object.entries(raw.extra).map(([key, value]) => [key, isObject(value) || Array.isArray(value) ? JSON.stringify(value) : str(value)]))
    : {};
  return create(ChartSchema, { type, title: str(raw.title), elements, extra });
}
