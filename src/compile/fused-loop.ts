import { scalarKernels } from "../ops/scalar-kernels.js";
import type { TensorData } from "../ops/types.js";
import { formatLiteral } from "./kernels-js.js";

/**
 * How a loop reads or writes one buffer: element offset and a stride per iteration axis. A read may
 * carry bounds (per iteration axis, [lo, hi)) outside which it yields `fill` instead: that is how a
 * zero-padded tensor is read without being built.
 */
export interface Access {
  readonly offset: number;
  readonly strides: readonly number[];
  readonly bounds?: readonly (readonly [number, number])[];
  readonly fill?: number;
}

/** One value the loop body computes: a JavaScript expression over operand and earlier value names. */
export interface BodyLine {
  readonly name: string;
  readonly expression: string;
}

export interface LoopOutput {
  /** A name from the body, `a${k}`, or a literal. */
  readonly value: string;
  /** Where it goes; for a reduction, the strides are 0 along the reduced axes. */
  readonly access: Access;
  readonly reduce?: { readonly identity: number; js(acc: string, x: string): string };
  /** Outputs with the same id accumulate into the same array (a scattered sum): it is set up once. */
  readonly buffer?: number;
}

export interface LoopSpec {
  /** The index space the loop walks, row-major. */
  readonly shape: readonly number[];
  /** Operand reads; the body refers to operand k's element as `a${k}`. */
  readonly operands: readonly Access[];
  readonly body: readonly BodyLine[];
  readonly outputs: readonly LoopOutput[];
  readonly float32: boolean;
}

export type FusedLoop = (outs: readonly TensorData[], operands: readonly TensorData[]) => void;

interface Dim {
  extent: number;
  /** Strides of every access: outputs first, then operands. */
  strides: number[];
  /** Bounds of every bounded operand along this axis, or undefined where the axis is unrestricted. */
  bounds: (readonly [number, number] | undefined)[];
}

/**
 * Merges adjacent axes that every access walks contiguously (stride[d] = stride[d+1]·extent[d+1]),
 * so that an elementwise chain over same-shaped tensors becomes one flat loop. Axes along which a
 * bounded read is restricted stay separate, since their index is tested.
 */
function collapse(spec: LoopSpec): Dim[] {
  const accesses = [...spec.outputs.map((o) => o.access), ...spec.operands];
  const dims: Dim[] = [];
  spec.shape.forEach((extent, d) => {
    if (extent === 1) return;
    const strides = accesses.map((a) => a.strides[d]);
    const bounds = accesses.map((a) => {
      const b = a.bounds?.[d];
      return b && (b[0] > 0 || b[1] < extent) ? b : undefined;
    });
    const last = dims[dims.length - 1];
    const free = (bs: Dim["bounds"]) => bs.every((b) => b === undefined);
    if (last && free(last.bounds) && free(bounds) && last.strides.every((s, k) => s === strides[k] * extent)) {
      last.extent *= extent;
      last.strides = strides;
      return;
    }
    dims.push({ extent, strides, bounds });
  });
  return dims;
}

/** What every part of a generated loop is written from. */
interface Gen {
  readonly spec: LoopSpec;
  readonly dims: readonly Dim[];
  readonly depth: number;
  readonly nOut: number;
  /** Operands whose read is the same at every index: loaded once, before the loop. */
  readonly invariant: readonly boolean[];
  readonly moving: readonly number[];
  /** Per output: a scalar accumulator for full reductions, in-place accumulation for partial ones. */
  readonly fullReduce: readonly boolean[];
  round(e: string): string;
  lit(x: number): string;
}

const outOffset = (j: number, d: number) => `o${j}_${d}`;
const inOffset = (k: number, d: number) => `p${k}_${d}`;

/**
 * Generates one loop nest computing several fused groups at once. The code contains only names,
 * offsets and strides computed here, op templates from our table and literals formatted by
 * formatLiteral: never client text.
 */
export function generateLoop(spec: LoopSpec): FusedLoop {
  const dims = collapse(spec);
  const nOut = spec.outputs.length;
  const invariant = spec.operands.map((_, k) => dims.every((d) => d.strides[nOut + k] === 0 && d.bounds[nOut + k] === undefined));
  const g: Gen = {
    spec,
    dims,
    depth: dims.length,
    nOut,
    invariant,
    moving: spec.operands.map((_, k) => k).filter((k) => !invariant[k]),
    fullReduce: spec.outputs.map((o) => o.reduce !== undefined && dims.every((d, _i) => d.strides[spec.outputs.indexOf(o)] === 0)),
    round: (e: string) => (spec.float32 ? `Math.fround(${e})` : e),
    lit: (x: number) => formatLiteral(spec.float32 ? Math.fround(x) : x),
  };
  const prologue: string[] = [];
  prologue.push(`const [${spec.outputs.map((_, j) => `out${j}`).join(", ")}] = outs;`);
  if (spec.operands.length) prologue.push(`const [${spec.operands.map((_, k) => `in${k}`).join(", ")}] = operands;`);
  spec.operands.forEach((o, k) => {
    if (invariant[k]) prologue.push(`const a${k} = in${k}[${o.offset}];`);
  });
  const starts = [
    ...spec.outputs.map((o, j) => `${outOffset(j, 0)} = ${o.access.offset}`),
    ...g.moving.map((k) => `${inOffset(k, 0)} = ${spec.operands[k].offset}`),
  ];
  prologue.push(`const ${starts.join(", ")};`);
  const firstWriter = prepareAccumulators(g, prologue);
  const inner = `${loads(g)} ${spec.body.map((l) => `const ${l.name} = ${g.round(l.expression)};`).join(" ")} ${stores(g, firstWriter)}`;
  const epilogue = spec.outputs
    .map((o, j) => {
      if (!o.reduce || !g.fullReduce[j]) return "";
      const at = `out${j}[${o.access.offset}]`;
      // A scattered sum's writes may meet at one element (x + x): each adds its share.
      return `${at} = ${g.round(o.buffer === undefined ? `acc${j}` : o.reduce.js(at, `acc${j}`))};`;
    })
    .filter(Boolean);
  const code = `${prologue.join("\n")}\n${loops(g, 0, inner)}\n${epilogue.join("\n")}`;
  return new Function("H", `return function fused(outs, operands) {\n${code}\n};`)(scalarKernels) as FusedLoop;
}

/**
 * In-place accumulation starts from the identity. In a flat loop whose outputs into one array all
 * step by 1, the output with the largest offset (the first in order among equals) is the first to
 * reach every element it writes: it stores instead of accumulating, and only the elements it never
 * writes are set to the identity beforehand. Returns those first writers.
 */
function prepareAccumulators(g: Gen, prologue: string[]): Set<number> {
  const { spec, dims, depth, fullReduce, lit } = g;
  const firstWriter = new Set<number>();
  const prepared = new Set<number>();
  spec.outputs.forEach((o, j) => {
    if (!o.reduce) return;
    const key = o.buffer ?? -1 - j;
    if (fullReduce[j]) {
      prologue.push(`let acc${j} = ${lit(o.reduce.identity)};`);
      // A scattered sum's writes add into its array, whose other elements no write reaches: set it first.
      if (o.buffer !== undefined && !prepared.has(key)) prologue.push(`out${j}.fill(${lit(o.reduce.identity)});`);
      prepared.add(key);
      return;
    }
    if (prepared.has(key)) return;
    prepared.add(key);
    const sharing = spec.outputs
      .map((_p, i) => i)
      .filter((i) => i === j || (o.buffer !== undefined && spec.outputs[i].buffer === o.buffer));
    const flat = depth === 1 && sharing.every((i) => dims[0].strides[i] === 1 && !fullReduce[i]);
    if (!flat) {
      prologue.push(`out${j}.fill(${lit(o.reduce.identity)});`);
      return;
    }
    const first = sharing.reduce((best, i) => (spec.outputs[i].access.offset > spec.outputs[best].access.offset ? i : best), sharing[0]);
    const start = spec.outputs[first].access.offset;
    firstWriter.add(first);
    prologue.push(
      `out${j}.fill(${lit(o.reduce.identity)}, 0, ${start}); out${j}.fill(${lit(o.reduce.identity)}, ${start + dims[0].extent});`,
    );
  });
  return firstWriter;
}

/** The innermost reads of moving operands, yielding `fill` outside a bounded read's window. */
function loads(g: Gen): string {
  return g.moving
    .map((k) => {
      const o = g.spec.operands[k];
      const tests = g.dims.flatMap((d, i) => {
        const b = d.bounds[g.nOut + k];
        return b ? [`i${i + 1} >= ${b[0]} && i${i + 1} < ${b[1]}`] : [];
      });
      const read = `in${k}[${inOffset(k, g.depth)}]`;
      return `const a${k} = ${tests.length ? `(${tests.join(" && ")}) ? ${read} : ${g.lit(o.fill ?? 0)}` : read};`;
    })
    .join(" ");
}

function stores(g: Gen, firstWriter: ReadonlySet<number>): string {
  const { depth, round, lit } = g;
  return g.spec.outputs
    .map((o, j) => {
      if (!o.reduce) return `out${j}[${outOffset(j, depth)}] = ${round(o.value)};`;
      if (g.fullReduce[j]) return `acc${j} = ${o.reduce.js(`acc${j}`, o.value)};`;
      if (firstWriter.has(j)) return `out${j}[${outOffset(j, depth)}] = ${round(o.reduce.js(lit(o.reduce.identity), o.value))};`;
      const at = `out${j}[${outOffset(j, depth)}]`;
      return `${at} = ${round(o.reduce.js(at, o.value))};`;
    })
    .join(" ");
}

/** The loops from axis `d` inwards, each advancing every moving offset by its stride. */
function loops(g: Gen, d: number, inner: string): string {
  if (d === g.depth) return inner;
  const dim = g.dims[d];
  const i = `i${d + 1}`;
  const offsets = [
    ...g.spec.outputs.map((_, j) => `${outOffset(j, d + 1)} = ${outOffset(j, d)} + ${i} * ${dim.strides[j]}`),
    ...g.moving.map((k) => `${inOffset(k, d + 1)} = ${inOffset(k, d)} + ${i} * ${dim.strides[g.nOut + k]}`),
  ];
  return `for (let ${i} = 0; ${i} < ${dim.extent}; ${i}++) {\nconst ${offsets.join(", ")};\n${loops(g, d + 1, inner)}\n}`;
}
