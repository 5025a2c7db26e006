import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, type PageRig, settled, startRig, WORKED_LINK } from "./browser.js";

const MODEL = {
  input: [3],
  layers: [{ type: "dense", units: 4, name: "fc1" }, { type: "relu" }, { type: "dense", units: 2, name: "fc2" }],
  loss: "mse",
};

describe.skipIf(CHROMIUM === undefined)("the playground's other views, in headless Chromium", () => {
  let rig: PageRig;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => rig?.close());

  it("draws a Hessian as a heat map, each cell's exact value in its tooltip", async () => {
    const page = await rig.open(`${WORKED_LINK}&mode=hessian`);
    await settled(page);
    expect(await page.$$eval("#hessian svg.heat rect", (rs) => rs.length)).toBe(4);
    const titles = await page.$$eval("#hessian svg.heat rect title", (ts) => ts.map((t) => t.textContent));
    expect(titles).toContain("∂²f/∂x1∂x2 = 0.17914945240007943");
    expect(titles).toContain("∂²f/∂x2∂x2 = -0.17914945240007943");
    expect(await page.textContent('#result [data-key="hessian.x1.x1"] td')).toBe("0.23886593653343924");
    expect(await page.isVisible("#graph-view")).toBe(false);
    await page.close();
  });

  it("shows a model's layers and the gradient norm of each parameter", async () => {
    const at = JSON.stringify({ x: [[1, 2, 3]], y: [[1, 0]] });
    const page = await rig.open(`/?model=${encodeURIComponent(JSON.stringify(MODEL))}&at=${encodeURIComponent(at)}&mode=reverse&seed=1`);
    await settled(page);
    expect(await page.$$eval("#model ol.layers li", (lis) => lis.map((li) => li.textContent))).toEqual([
      "input [3]",
      "dense · fc1 · units 4",
      "relu",
      "dense · fc2 · units 2",
      "loss mse",
    ]);
    const params = await page.$$eval("#model table.params tbody tr", (trs) => trs.map((tr) => tr.getAttribute("data-param")));
    expect(params).toEqual(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    const bias = await page.$$eval('#model tr[data-param="fc2.bias"] td', (tds) => tds.map((td) => td.textContent));
    expect(bias[1]).toBe("[2]");
    expect(Number(bias[2])).toBeGreaterThan(0);
    await page.close();
  });

  it("evaluates a JSON graph pasted in, a node per trace row", async () => {
    const graph = readFileSync(new URL("../../examples/worked-example.graph.json", import.meta.url), "utf8");
    const page = await rig.open("/");
    await page.selectOption("#kind", "graph");
    await page.fill("#source", graph);
    await page.click("#evaluate");
    await settled(page);
    expect(await page.textContent("#value .num")).toBe("0.23886593653343924");
    const nodes = await page.$$eval("#graph g.node", (gs) => gs.map((g) => g.getAttribute("data-id")).sort());
    const rows = await page.$$eval("#trace tbody tr", (trs) => trs.map((tr) => tr.getAttribute("data-id")).sort());
    expect(nodes).toHaveLength(8);
    expect(nodes).toEqual(rows);
    expect(new URL(page.url()).searchParams.get("graph")).toBe(graph);
    await page.close();
  });

  it("collapses a 10,000-node function to the nodes nearest the output, and says so", async () => {
    // sin(x+1) + sin(x+2) + …: three nodes a term, none shared.
    const expr = Array.from({ length: 3400 }, (_, k) => `sin(x+${k + 1})`).join("+");
    const page = await rig.open("/");
    await page.selectOption("#mode", "reverse");
    await page.fill("#source", expr);
    await page.fill("#at", "x=0.5");
    const started = Date.now();
    await page.click("#evaluate");
    await settled(page);
    expect(Date.now() - started).toBeLessThan(15_000);
    const notice = await page.textContent("#notice");
    expect(notice).toMatch(/This function has 10\d{3} nodes/);
    const nodes = await page.$$eval("#graph g.node", (gs) => gs.length);
    expect(nodes).toBe(300);
    expect(await page.$$eval("#trace tbody tr", (trs) => trs.length)).toBe(300);
    expect(await page.$$eval("#graph g.node.output", (gs) => gs.length)).toBe(1);
    await page.close();
  });

  it("plots a minimisation live from the event stream, on log axes", async () => {
    const page = await rig.open(`/?expr=${encodeURIComponent("100*(y-x^2)^2+(1-x)^2")}&at=x=-1.2,y=1&mode=reverse`);
    await settled(page);
    await page.click("#minimize");
    await page.waitForSelector("#min-status .status", { timeout: 20_000 });
    expect(await page.textContent("#min-status .status")).toMatch(/^converged/);
    expect(await page.$$eval("#min-plot canvas", (cs) => cs.length)).toBe(1);
    // uPlot's legend lists both series; the plot holds one point per progress event.
    const legend = await page.$$eval("#min-plot .u-legend .u-label", (ls) => ls.map((l) => l.textContent));
    expect(legend).toEqual(["iteration", "value", "‖∇‖"]);
    await page.close();
  });

  it("loaded nothing from elsewhere and broke no rule of its Content-Security-Policy", () => {
    expect(rig.requests.filter((u) => !u.startsWith(rig.base))).toEqual([]);
    expect(rig.errors).toEqual([]);
  });
});
