import { el, isFiniteValue, isTensor, num, tensorText } from "./format.js";

/** Fields of an answer shown elsewhere or not results. */
const SKIP = new Set(["id", "mode", "trace", "nonFinite", "parameters", "value", "outputs"]);

/** Leaves of a nested answer (gradient by input, jacobian by output then input, …) as dotted paths. */
function leaves(v: unknown, path: string, out: [string, unknown][]): [string, unknown][] {
  if (v !== null && typeof v === "object" && !Array.isArray(v) && !isTensor(v)) {
    for (const [k, x] of Object.entries(v)) leaves(x, path === "" ? k : `${path}.${k}`, out);
  } else out.push([path, v]);
  return out;
}

function numberCell(v: unknown): HTMLElement {
  const text = isTensor(v) ? tensorText(v, 64) : num(v);
  return el("td", { class: `num${isFiniteValue(v) ? "" : " bad"}` }, text);
}

/** The value (or outputs) and every result field of the mode, each number at full float64 precision. */
export function drawResult(container: HTMLElement, answer: Record<string, unknown>): void {
  const parts: Node[] = [];
  if ("value" in answer) parts.push(el("p", { id: "value" }, "value = ", el("span", { class: "num" }, num(answer.value))));
  if (answer.outputs !== undefined) parts.push(table("outputs", answer.outputs));
  for (const [key, v] of Object.entries(answer)) if (!SKIP.has(key)) parts.push(table(key, v));
  parts.push(el("p", { class: "meta" }, `mode ${String(answer.mode)} · function ${String(answer.id)}`));
  container.replaceChildren(...parts);
}

function table(key: string, v: unknown): HTMLElement {
  const rows = leaves(v, "", []).map(([path, x]) =>
    el("tr", { "data-key": `${key}${path === "" ? "" : `.${path}`}` }, el("th", {}, path || key), numberCell(x)),
  );
  return el("div", { class: "field" }, el("h3", {}, key), el("table", { class: "values", id: `result-${key}` }, el("tbody", {}, ...rows)));
}
