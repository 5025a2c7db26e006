import type { Trace, TraceRow } from "../engine/trace.js";

/** A number as JSON would write it (full float64 precision), a tensor as its shape and first elements. */
function cell(v: unknown): string {
  if (v === undefined) return "";
  if (typeof v === "number") return String(v);
  if (v !== null && typeof v === "object" && "shape" in v && "data" in v) {
    const { shape, data } = v as { shape: number[]; data: ArrayLike<number> };
    const first = Array.from(data).slice(0, 4).map(String).join(", ");
    return `[${shape.join(",")}] ${first}${data.length > 4 ? ", …" : ""}`;
  }
  if (ArrayBuffer.isView(v)) return cell({ shape: [(v as Float64Array).length], data: v });
  return JSON.stringify(v);
}

function formula(row: TraceRow): string {
  if (row.op === "input") return `${row.id} = input`;
  return `${row.id} = ${row.op}(${row.args.map(String).join(", ")})`;
}

/** The derivative columns: ūᵢ in reverse mode, u̇ᵢ per swept input in forward mode, none for values. */
function columns(trace: Trace): { title: string; read: (row: TraceRow) => unknown }[] {
  if (trace.mode === "reverse") return [{ title: "ūᵢ", read: (r) => r.adjoint }];
  if (trace.mode !== "forward") return [];
  const first = trace.rows.find((r) => r.tangent !== undefined)?.tangent;
  const perInput = first !== null && typeof first === "object" && !ArrayBuffer.isView(first) && !("shape" in first);
  if (!perInput) return [{ title: "u̇ᵢ", read: (r) => r.tangent }];
  return Object.keys(first as object).map((name) => ({
    title: `u̇ᵢ (∂/∂${name})`,
    read: (r) => (r.tangent as Record<string, unknown> | undefined)?.[name],
  }));
}

/**
 * The evaluation trace as the seed's table: one line per uᵢ, `uᵢ = op(…)`, its value, and its adjoint
 * or tangents, in aligned columns; the output rows are marked, and the reverse sweep's seed closes it.
 */
export function traceTable(trace: Trace): string {
  const cols = columns(trace);
  const header = ["uᵢ = op(…)", "value", ...cols.map((c) => c.title), ""];
  const body = trace.rows.map((r) => [
    formula(r),
    cell(r.value),
    ...cols.map((c) => cell(c.read(r))),
    r.output === undefined ? "" : `← output ${r.output}`,
  ]);
  const lines = [header, ...body];
  // Width by code points, so that ū, u̇ (a combining dot) and ᵢ count as the one column they take.
  const width = (s: string) => [...s.normalize("NFC")].filter((ch) => !/\p{M}/u.test(ch)).length;
  const widths = header.map((_, i) => Math.max(...lines.map((l) => width(l[i]))));
  const render = (l: string[]) =>
    l
      .map((s, i) => s + " ".repeat(widths[i] - width(s)))
      .join("  ")
      .trimEnd();
  const out = [
    render(header),
    widths
      .map((w) => "─".repeat(w))
      .join("  ")
      .trimEnd(),
    ...body.map(render),
  ];
  if (trace.seed !== undefined) out.push("", `seed: ū(${trace.seed.id}) = ${cell(trace.seed.adjoint)}`);
  return `${out.join("\n")}\n`;
}
