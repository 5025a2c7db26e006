import { scalarKernels } from "../ops/scalar-kernels.js";
import type { TensorData } from "../ops/types.js";
import { formatLiteral } from "./kernels-js.js";

/** How a fused loop reads (or writes) one buffer: element offset and a stride per iteration axis. */
export interface Access {
  readonly offset: number;
  readonly strides: readonly number[];
}

/** One value the loop body computes: a JavaScript expression over operand and earlier value names. */
export interface BodyLine {
  readonly name: string;
  readonly expression: string;
}

export interface LoopSpec {
  /** The index space the loop walks, row-major. */
  readonly shape: readonly number[];
  /** Operand reads; the body refers to operand k's element as `a${k}`. */
  readonly operands: readonly Access[];
  readonly body: readonly BodyLine[];
  /** The body's result (a name from `body`, `a${k}`, or a literal). */
  readonly result: string;
  /** The output write; for a reduction its strides are 0 along the reduced axes. */
  readonly output: Access;
  readonly reduce?: { readonly identity: number; js(acc: string, x: string): string };
  readonly float32: boolean;
}

export type FusedLoop = (out: TensorData, operands: readonly TensorData[]) => void;

/**
 * Merges adjacent axes that every access walks contiguously (stride[d] = stride[d+1]·shape[d+1]),
 * so that an elementwise chain over same-shaped tensors becomes one flat loop.
 */
function collapse(shape: readonly number[], accesses: readonly (readonly number[])[], reduced: readonly boolean[]) {
  const dims: { extent: number; strides: number[]; reduced: boolean }[] = [];
  shape.forEach((extent, d) => {
    if (extent === 1) return;
    const strides = accesses.map((s) => s[d]);
    const last = dims[dims.length - 1];
    if (last && last.reduced === reduced[d] && last.strides.every((s, k) => s === strides[k] * extent)) {
      last.extent *= extent;
      last.strides = strides;
      return;
    }
    dims.push({ extent, strides, reduced: reduced[d] });
  });
  return dims;
}

/**
 * Generates the loop for a fused group. The code contains only names, offsets and strides computed
 * here, op templates from our table and literals formatted by formatLiteral: never client text.
 */
export function generateLoop(spec: LoopSpec): FusedLoop {
  const accesses = [spec.output.strides, ...spec.operands.map((o) => o.strides)];
  const reducedAxes = spec.output.strides.map((s, d) => spec.reduce !== undefined && s === 0 && spec.shape[d] !== 1);
  const dims = collapse(spec.shape, accesses, reducedAxes);
  const depth = dims.length;
  const round = (e: string) => (spec.float32 ? `Math.fround(${e})` : e);
  const reduce = spec.reduce;
  // Operands that move with no axis are read once, before the loops.
  const invariant = spec.operands.map((_, k) => dims.every((d) => d.strides[k + 1] === 0));
  const moving = spec.operands.map((_, k) => k).filter((k) => !invariant[k]);

  const prologue: string[] = [];
  if (spec.operands.length) prologue.push(`const [${spec.operands.map((_, k) => `in${k}`).join(", ")}] = operands;`);
  spec.operands.forEach((o, k) => {
    if (invariant[k]) prologue.push(`const a${k} = in${k}[${o.offset}];`);
  });
  prologue.push(`const po_0 = ${spec.output.offset}${moving.map((k) => `, p${k}_0 = ${spec.operands[k].offset}`).join("")};`);

  // A reduction whose reduced axes are all innermost keeps its running value in a local; otherwise
  // it accumulates in the output, which starts at the identity.
  const firstReduced = dims.findIndex((d) => d.reduced);
  const localAccumulator = reduce !== undefined && firstReduced !== -1 && dims.slice(firstReduced).every((d) => d.reduced);
  if (reduce && firstReduced !== -1 && !localAccumulator) prologue.push(`out.fill(${formatLiteral(reduce.identity)});`);

  const body = spec.body.map((l) => `const ${l.name} = ${round(l.expression)};`).join(" ");
  const loads = moving.map((k) => `const a${k} = in${k}[p${k}_${depth}];`).join(" ");
  let store: string;
  if (!reduce || firstReduced === -1) {
    // No axis of extent > 1 is reduced: each output element combines one value with the identity.
    const value = reduce ? reduce.js(formatLiteral(reduce.identity), spec.result) : spec.result;
    store = `out[po_${depth}] = ${round(value)};`;
  } else if (localAccumulator) store = `acc = ${reduce.js("acc", spec.result)};`;
  else store = `out[po_${depth}] = ${round(reduce.js(`out[po_${depth}]`, spec.result))};`;

  const emit = (d: number): string => {
    if (d === depth) return `${loads} ${body} ${store}`;
    const dim = dims[d];
    const i = `i${d + 1}`;
    const offsets = [
      `po_${d + 1} = po_${d} + ${i} * ${dim.strides[0]}`,
      ...moving.map((k) => `p${k}_${d + 1} = p${k}_${d} + ${i} * ${dim.strides[k + 1]}`),
    ];
    const loop = `for (let ${i} = 0; ${i} < ${dim.extent}; ${i}++) {\nconst ${offsets.join(", ")};\n${emit(d + 1)}\n}`;
    if (localAccumulator && reduce && d === firstReduced) {
      return `let acc = ${formatLiteral(reduce.identity)};\n${loop}\nout[po_${d}] = ${round("acc")};`;
    }
    return loop;
  };
  const code = `${prologue.join("\n")}\n${emit(0)}`;
  return new Function("H", `return function fused(out, operands) {\n${code}\n};`)(scalarKernels) as FusedLoop;
}
