import { el, isFiniteValue, num } from "./format.js";
import { derivativeColumns, formula, type Trace, type TraceRow } from "./trace-rows.js";

/**
 * The trace in the seed's form: uᵢ = op(…), its value, and ūᵢ (reverse) or u̇ᵢ per swept input
 * (forward). Each row carries its node's id, for the hover link with the graph.
 */
export function drawTraceTable(container: HTMLElement, rows: readonly TraceRow[], trace: Trace, nonFiniteNode: string | undefined): void {
  const columns = derivativeColumns(trace);
  const head = el("tr", {}, el("th", {}, "uᵢ = op(…)"), el("th", {}, "value"), ...columns.map((c) => el("th", {}, c.title)));
  const body = el("tbody");
  for (const row of rows) {
    const classes = [
      row.op === "input" ? "input" : "",
      row.output !== undefined ? "output" : "",
      row.id === nonFiniteNode ? "nonfinite" : "",
    ];
    const value = el("td", { class: `num${isFiniteValue(row.value) ? "" : " bad"}` }, num(row.value));
    const derivatives = columns.map((c) => {
      const v = c.read(row);
      return el("td", { class: `num${isFiniteValue(v) ? "" : " bad"}` }, num(v));
    });
    body.append(
      el(
        "tr",
        { "data-id": row.id, class: classes.filter(Boolean).join(" ") },
        el("td", { class: "formula" }, formula(row)),
        value,
        ...derivatives,
      ),
    );
  }
  const table = el("table", { class: "trace" }, el("thead", {}, head), body);
  const parts: Node[] = [table];
  if (trace.seed !== undefined) parts.push(el("p", { class: "seed" }, `seed: ū(${trace.seed.id}) = ${num(trace.seed.adjoint)}`));
  container.replaceChildren(...parts);
}
