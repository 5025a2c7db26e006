import { el, elements, isTensor, l2, num } from "./format.js";

interface Layer {
  readonly type: string;
  readonly name?: string;
  readonly [key: string]: unknown;
}

/** `dense · fc1 · units 256`: a layer's type, name and settings as the model states them. */
function layerText(layer: Layer): string {
  const settings = Object.entries(layer)
    .filter(([k]) => k !== "type" && k !== "name")
    .map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
  return [layer.type, layer.name, ...settings].filter((s) => s !== undefined && s !== "").join(" · ");
}

/**
 * A model's layers in order, then each parameter's shape and gradient norm (L2) as a bar, longest the
 * largest: a layer whose gradient vanishes or explodes shows at a glance.
 */
export function drawModel(container: HTMLElement, model: Record<string, unknown>, gradient: Record<string, unknown>): void {
  const layers = (Array.isArray(model.layers) ? model.layers : []) as Layer[];
  const input = Array.isArray(model.input) ? `input [${model.input.join(", ")}]` : "input";
  const list = el("ol", { class: "layers" }, el("li", { class: "io" }, input));
  for (const layer of layers) list.append(el("li", {}, layerText(layer)));
  list.append(el("li", { class: "io" }, `loss ${String(model.loss ?? "")}`));

  const norms = Object.entries(gradient).map(([name, g]) => ({ name, g, norm: l2(g) }));
  const largest = Math.max(0, ...norms.map((p) => p.norm).filter(Number.isFinite));
  const rows = norms.map(({ name, g, norm }) => {
    const bar = el("span", { class: "bar" });
    // Set through CSSOM, which the Content-Security-Policy allows (a style attribute would not be).
    bar.style.width = `${largest > 0 && Number.isFinite(norm) ? (100 * norm) / largest : 0}%`;
    const shape = isTensor(g) ? `[${g.shape.join(", ")}]` : "scalar";
    return el(
      "tr",
      { "data-param": name },
      el("td", {}, name),
      el("td", {}, shape),
      el("td", { class: "num" }, num(norm)),
      el("td", { class: "barcell" }, bar),
      el("td", { class: "num" }, String(elements(g).length)),
    );
  });
  const head = el(
    "tr",
    {},
    el("th", {}, "parameter"),
    el("th", {}, "shape"),
    el("th", {}, "‖∇‖₂"),
    el("th", {}, ""),
    el("th", {}, "elements"),
  );
  const table = el("table", { class: "params" }, el("thead", {}, head), el("tbody", {}, ...rows));
  container.replaceChildren(el("h3", {}, "Layers"), list, el("h3", {}, "Gradient norm per parameter"), table);
}
