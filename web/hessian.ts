import { el, elements, num, svg } from "./format.js";

const CELL = 44;

/** Names of the flattened variables: `x1`, or `x[0]`, `x[1]`, … for a tensor input of that many elements. */
function variables(gradient: Record<string, unknown>): { names: string[]; sizes: Map<string, number> } {
  const names: string[] = [];
  const sizes = new Map<string, number>();
  for (const [name, g] of Object.entries(gradient)) {
    const n = elements(g).length;
    sizes.set(name, n);
    if (typeof g === "object" && g !== null) for (let i = 0; i < n; i++) names.push(`${name}[${i}]`);
    else names.push(name);
  }
  return { names, sizes };
}

/** The Hessian blocks (`hessian[a][b]`, tensors of shape [...a, ...b]) as one dense row-major matrix. */
export function hessianMatrix(
  hessian: Record<string, Record<string, unknown>>,
  gradient: Record<string, unknown>,
): { names: string[]; m: number[][] } {
  const { names, sizes } = variables(gradient);
  const inputs = [...sizes.keys()];
  const m = names.map(() => names.map(() => 0));
  let row = 0;
  for (const a of inputs) {
    let col = 0;
    const na = sizes.get(a) ?? 0;
    for (const b of inputs) {
      const nb = sizes.get(b) ?? 0;
      const data = elements(hessian[a]?.[b]);
      for (let i = 0; i < na; i++) for (let j = 0; j < nb; j++) m[row + i][col + j] = data[i * nb + j] ?? Number.NaN;
      col += nb;
    }
    row += na;
  }
  return { names, m };
}

/** A diverging colour: blue below zero, red above, white at zero, scaled by the largest magnitude. */
function colour(v: number, scale: number): string {
  if (!Number.isFinite(v)) return "#ffd54f";
  const t = scale === 0 ? 0 : Math.min(1, Math.abs(v) / scale);
  const fade = Math.round(255 * (1 - t));
  return v >= 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

/** The Hessian as a heat map; each cell's exact value is its tooltip (and its text while the matrix is small). */
export function drawHessian(container: HTMLElement, names: readonly string[], m: readonly number[][]): void {
  const n = names.length;
  const scale = Math.max(0, ...m.flat().filter(Number.isFinite).map(Math.abs));
  const cell = n > 12 ? Math.max(4, Math.floor(480 / n)) : CELL;
  const label = n > 12 ? 0 : 60;
  const size = label + n * cell;
  const root = svg("svg", { width: size, height: size, class: "heat", role: "img" });
  names.forEach((name, i) => {
    if (label === 0) return;
    root.append(svg("text", { x: label - 6, y: label + i * cell + cell / 2 + 4, class: "axis end" }, name));
    root.append(svg("text", { x: label + i * cell + cell / 2, y: label - 8, class: "axis mid" }, name));
  });
  m.forEach((r, i) => {
    r.forEach((v, j) => {
      const rect = svg("rect", {
        x: label + j * cell,
        y: label + i * cell,
        width: cell,
        height: cell,
        fill: colour(v, scale),
        "data-i": i,
        "data-j": j,
      });
      rect.append(svg("title", {}, `∂²f/∂${names[i]}∂${names[j]} = ${num(v)}`));
      root.append(rect);
      if (n <= 6)
        root.append(
          svg("text", { x: label + j * cell + cell / 2, y: label + i * cell + cell / 2 + 4, class: "cell mid" }, num(v).slice(0, 6)),
        );
    });
  });
  const legend = el(
    "p",
    { class: "legend" },
    `blue < 0 < red; the strongest colour is |h| = ${num(scale)}. Hover a cell for its exact value.`,
  );
  container.replaceChildren(root, legend);
}
