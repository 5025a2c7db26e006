import { Graph, layout } from "@dagrejs/dagre";
import { el, num, svg } from "./format.js";
import { derivativeColumns, type Trace, type TraceRow } from "./trace-rows.js";

const CHAR = 7.2;
const LINE = 15;
const PAD = 8;

interface Box {
  readonly row: TraceRow;
  readonly lines: string[];
  readonly width: number;
  readonly height: number;
}

/** A node's label: id and op, the value, then the adjoint or each tangent, at full precision. */
function labelLines(row: TraceRow, trace: Trace): string[] {
  const lines = [`${row.id} · ${row.op}${row.output !== undefined ? ` → ${row.output}` : ""}`, `u = ${num(row.value)}`];
  for (const c of derivativeColumns(trace)) {
    const v = c.read(row);
    if (v !== undefined) lines.push(`${c.title.replace("ᵢ", "")} = ${num(v)}`);
  }
  return lines;
}

function box(row: TraceRow, trace: Trace): Box {
  const lines = labelLines(row, trace);
  const width = Math.max(...lines.map((l) => l.length)) * CHAR + 2 * PAD;
  return { row, lines, width, height: lines.length * LINE + 2 * PAD - 4 };
}

/**
 * Draws the rows as a layered DAG, inputs at the bottom and the output at the top, edges following the
 * data. dagre places the nodes (network-simplex ranking, crossing reduction); this only draws. Rows
 * whose operands were left out (a sampled graph) get a dashed border.
 */
export function drawGraph(container: HTMLElement, rows: readonly TraceRow[], trace: Trace, nonFiniteNode: string | undefined): void {
  const g = new Graph();
  g.setGraph({ rankdir: "BT", nodesep: 18, ranksep: 34, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  const boxes = new Map(rows.map((r) => [r.id, box(r, trace)]));
  for (const b of boxes.values()) g.setNode(b.row.id, { width: b.width, height: b.height });
  const partial = new Set<string>();
  for (const r of rows) {
    for (const a of r.args) {
      if (typeof a !== "string") continue;
      if (boxes.has(a)) g.setEdge(a, r.id);
      else partial.add(r.id);
    }
  }
  layout(g);
  const { width = 0, height = 0 } = g.graph() as { width?: number; height?: number };
  const root = svg("svg", {
    width: Math.ceil(width),
    height: Math.ceil(height),
    viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
    role: "img",
  });
  root.append(
    svg(
      "defs",
      {},
      svg(
        "marker",
        { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" },
        svg("path", { d: "M0,0 L8,4 L0,8 z" }),
      ),
    ),
  );
  for (const e of g.edges()) {
    const points = (g.edge(e) as { points: { x: number; y: number }[] }).points;
    const d = points.map((p, i) => `${i === 0 ? "M" : "L"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
    root.append(svg("path", { d, class: "edge", "data-from": e.v, "data-to": e.w, "marker-end": "url(#arrow)" }));
  }
  for (const b of boxes.values()) root.append(nodeGroup(b, g.node(b.row.id) as { x: number; y: number }, partial, nonFiniteNode));
  container.replaceChildren(root);
}

function nodeGroup(b: Box, at: { x: number; y: number }, partial: Set<string>, nonFiniteNode: string | undefined): SVGElement {
  const classes = ["node", `op-${b.row.op === "input" ? "input" : "op"}`];
  if (b.row.output !== undefined) classes.push("output");
  if (b.row.id === nonFiniteNode) classes.push("nonfinite");
  if (partial.has(b.row.id)) classes.push("partial");
  const x = at.x - b.width / 2;
  const y = at.y - b.height / 2;
  const group = svg("g", { class: classes.join(" "), "data-id": b.row.id, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` });
  group.append(svg("title", {}, b.lines.join("\n")), svg("rect", { width: b.width, height: b.height, rx: 5 }));
  b.lines.forEach((line, i) => {
    group.append(svg("text", { x: PAD, y: PAD + 11 + i * LINE, class: i === 0 ? "head" : "num" }, line));
  });
  return group;
}

/** Rows and nodes share data-id: hovering one lights both, and the operand edges of the node. */
export function linkHover(...containers: HTMLElement[]): void {
  const light = (id: string | null) => {
    for (const c of containers) {
      for (const e of c.querySelectorAll(".hl")) e.classList.remove("hl");
      if (id === null) continue;
      for (const e of c.querySelectorAll(`[data-id="${CSS.escape(id)}"], .edge[data-to="${CSS.escape(id)}"]`)) e.classList.add("hl");
    }
  };
  for (const c of containers) {
    c.addEventListener("mouseover", (ev) => light((ev.target as Element).closest("[data-id]")?.getAttribute("data-id") ?? null));
    c.addEventListener("mouseleave", () => light(null));
  }
}

export function notice(text: string): HTMLElement {
  return el("p", { class: "notice" }, text);
}
