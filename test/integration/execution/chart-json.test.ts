/**
 * A JSON display that describes a chart comes back as the result's `chart`, in every language
 * whose kernel can display JSON, with its JSON kept as it was sent and non-ASCII text intact.
 * (Python's matplotlib figures are charts.test.ts; Java and Bash run on the agent's own drivers,
 * which have no display.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Result } from "../../../src/gen/sandboxagent/api_pb.js";
import { newContext, run, startExecutionHarness, type ExecutionHarness } from "../../helpers/execution.js";

const CHART = {
  type: "line",
  title: "Température — 気温 📈",
  x_label: "jour",
  y_label: "°C",
  x_ticks: [1, 2],
  elements: [
    {
      label: "Zürich",
      points: [
        [1, 2.5],
        [2, 3],
      ],
    },
    {
      label: "東京",
      points: [
        [1, 9],
        [2, 11.25],
      ],
    },
  ],
};
const TEXT = JSON.stringify(CHART);
const NOT_A_CHART = JSON.stringify({ type: "line", note: "no elements: only JSON" });

/** How each language displays a JSON document given as text. */
const DISPLAY_JSON: Record<string, (json: string) => string> = {
  python: (json) => `import json\nfrom IPython.display import display, JSON\ndisplay(JSON(json.loads(${JSON.stringify(json)})))`,
  r: (json) => `IRdisplay::display_json(${JSON.stringify(json)})`,
  javascript: (json) => `const tslab = require("tslab");\ntslab.display.raw("application/json", ${JSON.stringify(json)});`,
  typescript: (json) => `Deno.jupyter.display({ "application/json": JSON.parse(${JSON.stringify(json)}) }, { raw: true });`,
  deno: (json) => `Deno.jupyter.display({ "application/json": JSON.parse(${JSON.stringify(json)}) }, { raw: true });`,
};

let h: ExecutionHarness;
beforeAll(async () => {
  h = await startExecutionHarness("agent-chart-json-");
});
afterAll(async () => {
  await h?.close();
});

async function displayed(language: string, ctx: string, json: string): Promise<Result> {
  const out = await run(h.exec, DISPLAY_JSON[language]!(json), { contextId: ctx });
  expect(out.errors).toEqual([]);
  const shown = out.results.filter((r) => r.json !== "");
  expect(shown).toHaveLength(1);
  return shown[0]!;
}

describe.each(Object.keys(DISPLAY_JSON))("%s", (language) => {
  let ctx: string;
  beforeAll(async () => {
    ctx = await newContext(h.contexts, language);
  }, 120_000);

  it("a JSON chart description is the result's chart, its text intact", async () => {
    const result = await displayed(language, ctx, TEXT);
    expect(JSON.parse(result.json)).toEqual(CHART);
    const chart = result.chart!;
    expect(chart).toBeDefined();
    expect(chart.type).toBe("line");
    expect(chart.title).toBe(CHART.title);
    expect(chart.extra).toMatchObject({ x_label: "jour", y_label: "°C", x_ticks: "[1,2]" });
    expect(
      chart.elements.map((e) =>
        e.element.case === "pointData" ? [e.element.value.label, e.element.value.points.map((p) => [p.xValue.value, p.yValue.value])] : e.element.case,
      ),
    ).toEqual([
      [
        "Zürich",
        [
          [1, 2.5],
          [2, 3],
        ],
      ],
      [
        "東京",
        [
          [1, 9],
          [2, 11.25],
        ],
      ],
    ]);
  });

  it("other JSON stays JSON, with no chart", async () => {
    const result = await displayed(language, ctx, NOT_A_CHART);
    expect(JSON.parse(result.json)).toEqual(JSON.parse(NOT_A_CHART));
    expect(result.chart).toBeUndefined();
  });
});
