import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, type PageRig, settled, startRig, WORKED_LINK } from "./browser.js";

const VALUE = "0.23886593653343924";
const GRADIENT = { x1: "-0.35829890480015886", x2: "-0.11943296826671962" };

/** ADJOINT_SCREENSHOTS=1 rewrites docs/playground-*.png, the README's pictures, from this run. */
const SHOTS = process.env.ADJOINT_SCREENSHOTS === "1";
const docs = (name: string) => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url));

describe.skipIf(CHROMIUM === undefined)("the playground page, in headless Chromium", () => {
  let rig: PageRig;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => rig?.close());

  it("is served at / with a strict Content-Security-Policy and no inline script or style", async () => {
    const response = await fetch(`${rig.base}/`);
    expect(response.status).toBe(200);
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain("unsafe");
    const html = await response.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect((await fetch(`${rig.base}/docs`)).status).toBeLessThan(400);
  });

  it("evaluates a deep link on load: the worked example's value and gradient to the last digit", async () => {
    const page = await rig.open(`${WORKED_LINK}&mode=reverse`);
    await settled(page);
    expect(await page.textContent("#value .num")).toBe(VALUE);
    expect(await page.textContent('#result [data-key="gradient.x1"] td')).toBe(GRADIENT.x1);
    expect(await page.textContent('#result [data-key="gradient.x2"] td')).toBe(GRADIENT.x2);
    // One node per trace row, each labelled with its id, op, value and adjoint.
    const rows = await page.$$eval("#trace tbody tr", (trs) => trs.map((tr) => tr.getAttribute("data-id")));
    const nodes = await page.$$eval("#graph g.node", (gs) => gs.map((g) => g.getAttribute("data-id")));
    expect(rows).toEqual(["x1", "x2", "v1", "v2", "v3", "v4", "v5", "f"]);
    expect([...nodes].sort()).toEqual([...rows].sort());
    expect(await page.$$eval("#graph path.edge", (es) => es.length)).toBe(8);
    const f = await page.textContent('#graph g.node[data-id="f"]');
    expect(f).toContain(`u = ${VALUE}`);
    expect(f).toContain("ū = 1");
    expect(await page.textContent('#trace tr[data-id="v4"]')).toContain("v4 = mul(-0.5, v3)");
    if (SHOTS) await page.screenshot({ path: docs("playground-reverse.png"), fullPage: true });
    await page.close();
  });

  it("shows forward mode with a tangent per input", async () => {
    const page = await rig.open(`${WORKED_LINK}&mode=forward`);
    await settled(page);
    expect(await page.inputValue("#mode")).toBe("forward");
    expect(await page.textContent("#value .num")).toBe(VALUE);
    const head = await page.$$eval("#trace thead th", (ths) => ths.map((th) => th.textContent));
    expect(head).toEqual(["uᵢ = op(…)", "value", "u̇ᵢ (∂/∂x1)", "u̇ᵢ (∂/∂x2)"]);
    const f = await page.$$eval('#trace tr[data-id="f"] td', (tds) => tds.map((td) => td.textContent));
    expect(f).toEqual(["f = mul(x1, v5)", VALUE, GRADIENT.x1, GRADIENT.x2]);
    if (SHOTS) await page.screenshot({ path: docs("playground-forward.png"), fullPage: true });
    await page.close();
  });

  it("highlights a row's node on hover, and a node's row", async () => {
    const page = await rig.open(WORKED_LINK);
    await settled(page);
    await page.hover('#trace tr[data-id="v3"]');
    expect(await page.getAttribute('#graph g.node[data-id="v3"]', "class")).toContain("hl");
    expect(await page.$$eval("#graph g.node.hl", (gs) => gs.length)).toBe(1);
    await page.hover('#graph g.node[data-id="v5"]');
    expect(await page.getAttribute('#trace tr[data-id="v5"]', "class")).toContain("hl");
    expect(await page.getAttribute('#trace tr[data-id="v3"]', "class")).not.toContain("hl");
    await page.close();
  });

  it("shows a syntax error at its position", async () => {
    const page = await rig.open("/");
    await page.fill("#source", "x1*exp(-0.5*(x1^2+x2^2)");
    await page.click("#evaluate");
    await settled(page);
    expect(await page.isVisible("#source-error")).toBe(true);
    expect(await page.getAttribute("#source-error", "data-position")).toBe("24");
    expect(await page.textContent("#source-error p")).toContain("column 24");
    // The place is marked in the text: the expression ends there, so the mark is the blank after it.
    expect(await page.textContent("#source-error pre")).toBe("x1*exp(-0.5*(x1^2+x2^2) ");
    expect(await page.textContent("#source-error mark")).toBe(" ");
    await page.fill("#source", "x1 + * x2");
    await page.click("#evaluate");
    await settled(page);
    const at = Number(await page.getAttribute("#source-error", "data-position"));
    expect(await page.textContent("#source-error mark")).toBe("x1 + * x2"[at - 1]);
    await page.close();
  });

  it("marks the node where a NaN first arose, with the service's provenance", async () => {
    const page = await rig.open(`/?expr=${encodeURIComponent("x*log(x)+1")}&at=x=-1&mode=reverse&nonfinite=1`);
    await settled(page);
    expect(await page.textContent("#value .num")).toBe("NaN");
    expect(await page.$$eval("#graph g.node.nonfinite", (gs) => gs.map((g) => g.getAttribute("data-id")))).toEqual(["v1"]);
    expect(await page.getAttribute('#trace tr[data-id="v1"]', "class")).toContain("nonfinite");
    const provenance = await page.textContent("#non-finite");
    expect(provenance).toContain("NaN first arose at node v1 (log), in the forward pass");
    expect(provenance).toContain("v1 = log(x) with x = -1");
    await page.close();
  });

  it("loaded nothing from elsewhere and broke no rule of its Content-Security-Policy", () => {
    expect(rig.requests.length).toBeGreaterThan(10);
    expect(rig.requests.filter((u) => !u.startsWith(rig.base))).toEqual([]);
    expect(rig.errors).toEqual([]);
  });
});
