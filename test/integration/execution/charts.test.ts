/**
 * Matplotlib figures come back as a PNG and, in the same result, as chart data from the formatter
 * the agent registers in every Python kernel.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService, ExecutionService, type Chart, type Result } from "../../../src/gen/sandboxagent/api_pb.js";
import { client, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { newContext, run } from "../../helpers/execution.js";

let agent: TestAgent;
let exec: ReturnType<typeof client<typeof ExecutionService>>;
let ctx: string;

beforeAll(async () => {
  agent = await startTestAgent();
  exec = client(ExecutionService, agent.url);
  ctx = await newContext(client(ContextService, agent.url), "python");
  const setup = await run(exec, "import matplotlib.pyplot as plt\nimport numpy as np", { contextId: ctx });
  expect(setup.errors).toEqual([]);
});
afterAll(async () => {
  await agent?.close();
});

/** Runs plotting code and returns the one figure result, which must carry a PNG and a chart. */
async function figure(code: string): Promise<{ result: Result; chart: Chart }> {
  const out = await run(exec, `${code}\nplt.show()`, { contextId: ctx });
  expect(out.errors).toEqual([]);
  const figures = out.results.filter((r) => r.png !== "");
  expect(figures).toHaveLength(1);
  const [result] = figures;
  expect(result!.isMainResult).toBe(false);
  expect(Buffer.from(result!.png, "base64").subarray(1, 4).toString()).toBe("PNG");
  expect(result!.chart).toBeDefined();
  return { result: result!, chart: result!.chart! };
}

function points(chart: Chart): Array<{ label: string; points: Array<[number | string, number | string]> }> {
  return chart.elements.map((element) => {
    if (element.element.case !== "pointData") throw new Error(`expected point data, got ${element.element.case}`);
    return {
      label: element.element.value.label,
      points: element.element.value.points.map((p) => [p.xValue.value ?? "", p.yValue.value ?? ""] as [number | string, number | string]),
    };
  });
}

describe("python charts", () => {
  it("describes a line chart with its title, series, labels, units and scales", async () => {
    const { chart } = await figure(
      "plt.figure()\nplt.plot([1, 2, 3], [2, 4, 8], label='growth')\nplt.plot([1, 2, 3], [1, 1, 1], label='flat')\n" +
        "plt.title('Growth')\nplt.xlabel('Time (s)')\nplt.ylabel('Size [MB]')\nplt.yscale('log')",
    );
    expect(chart.type).toBe("line");
    expect(chart.title).toBe("Growth");
    expect(points(chart)).toEqual([
      {
        label: "growth",
        points: [
          [1, 2],
          [2, 4],
          [3, 8],
        ],
      },
      {
        label: "flat",
        points: [
          [1, 1],
          [2, 1],
          [3, 1],
        ],
      },
    ]);
    expect(chart.extra).toMatchObject({ x_label: "Time (s)", y_label: "Size [MB]", x_unit: "s", y_unit: "MB", x_scale: "linear", y_scale: "log" });
  });

  it("describes a scatter chart", async () => {
    const { chart } = await figure("plt.figure()\nplt.scatter([1, 2], [3, 4], label='dots')");
    expect(chart.type).toBe("scatter");
    expect(points(chart)).toEqual([
      {
        label: "dots",
        points: [
          [1, 3],
          [2, 4],
        ],
      },
    ]);
  });

  it("describes a bar chart with categories, groups and values", async () => {
    const { chart } = await figure("plt.figure()\nplt.bar(['apples', 'pears'], [3, 5], label='2024')\nplt.title('Fruit')");
    expect(chart.type).toBe("bar");
    expect(chart.title).toBe("Fruit");
    expect(chart.elements.map((e) => e.element.value)).toMatchObject([
      { label: "apples", group: "2024", value: "3" },
      { label: "pears", group: "2024", value: "5" },
    ]);
    expect(chart.extra.x_scale).toBe("categorical");
  });

  it("describes a pie chart with labels and angles", async () => {
    const { chart } = await figure("plt.figure()\nplt.pie([1, 1, 2], labels=['a', 'b', 'c'])");
    expect(chart.type).toBe("pie");
    const slices = chart.elements.map((e) => (e.element.case === "pieData" ? e.element.value : undefined));
    expect(slices.map((s) => s?.label)).toEqual(["a", "b", "c"]);
    expect(slices.map((s) => Math.round(s?.angle ?? 0))).toEqual([90, 90, 180]);
    expect(slices.every((s) => s?.radius === 1)).toBe(true);
  });

  it("describes a box-and-whisker chart from the plot's statistics", async () => {
    const { chart } = await figure("plt.figure()\nplt.boxplot([[1, 2, 3, 4, 5, 100], [2, 3, 4]], labels=['with outlier', 'plain'])");
    expect(chart.type).toBe("box_and_whisker");
    const boxes = chart.elements.map((e) => (e.element.case === "boxWhiskerData" ? e.element.value : undefined));
    expect(boxes[0]).toMatchObject({ label: "with outlier", min: 1, median: 3.5, max: 5, outliers: [100] });
    expect(boxes[1]).toMatchObject({ label: "plain", min: 2, firstQuartile: 2.5, median: 3, thirdQuartile: 3.5, max: 4, outliers: [] });
  });

  it("describes a figure with several axes as a superchart of nested charts", async () => {
    const { chart } = await figure(
      "fig, (left, right) = plt.subplots(1, 2)\nleft.plot([0, 1], [0, 1])\nleft.set_title('L')\nright.bar(['x'], [2])\nright.set_title('R')\nfig.suptitle('Both')",
    );
    expect(chart.type).toBe("superchart");
    expect(chart.title).toBe("Both");
    const nested = chart.elements.map((e) => (e.element.case === "nestedChart" ? e.element.value : undefined));
    expect(nested.map((c) => [c?.type, c?.title])).toEqual([
      ["line", "L"],
      ["bar", "R"],
    ]);
  });

  it("gives dates on a datetime axis as ISO text", async () => {
    const { chart } = await figure("import datetime\nplt.figure()\nplt.plot([datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)], [1, 2])");
    expect(chart.extra.x_scale).toBe("datetime");
    expect(points(chart)[0]?.points[0]?.[0]).toMatch(/^2024-01-01T00:00:00/);
  });
});
