import { type Shape, sameShape, sizeOf, stridesOf } from "../tensor/shape.js";
import type { Attrs, LocalSparsity, OperandMap, SparsityRule, SparsitySpec, TensorData, ViewRule } from "./types.js";

/**
 * Building blocks for the ops' sparsity rules (OpDef.sparsity). A rule describes one op locally;
 * the ad layer composes the rules through a graph into a Jacobian pattern.
 */

/** For every element of `target`, the element of `source` that NumPy broadcasting reads. */
export function broadcastIndex(source: Shape, target: Shape): Int32Array {
  const lead = target.length - source.length;
  const own = stridesOf(source);
  const strides = target.map((d, i) => (i < lead || (source[i - lead] === 1 && d !== 1) ? 0 : own[i - lead]));
  return walkStrided(target, strides, 0);
}

/** Offsets offset + Σ index·stride for every element of `shape`, in row-major order. */
function walkStrided(shape: Shape, strides: readonly number[], offset: number): Int32Array {
  const n = sizeOf(shape);
  const out = new Int32Array(n);
  // A broadcast scalar and a vector view, the common cases at large n, without the index counter.
  if (strides.every((s) => s === 0)) return offset === 0 ? out : out.fill(offset);
  if (shape.length === 1) {
    for (let i = 0, o = offset; i < n; i++, o += strides[0]) out[i] = o;
    return out;
  }
  const index = new Int32Array(shape.length);
  let o = offset;
  for (let i = 0; i < n; i++) {
    out[i] = o;
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      index[ax]++;
      o += strides[ax];
      if (index[ax] < shape[ax]) break;
      o -= strides[ax] * shape[ax];
      index[ax] = 0;
    }
  }
  return out;
}

/** Elementwise: each output element reads its broadcast element of every operand that carries a derivative. */
export function elementwiseSparsity(differentiable: readonly boolean[] | undefined): SparsityRule {
  return ({ argShapes, shape }) =>
    argShapes.map((s, k) => {
      if (differentiable?.[k] === false) return null;
      if (sameShape(s, shape)) return "same";
      // A one-element operand is read whole by every element: no index array of the output's size.
      return sizeOf(s) === 1 ? "all" : { indices: broadcastIndex(s, shape) };
    });
}

/** A view op reads one operand element per output element (or the fill outside its bounds). */
export function viewSparsity<A extends Attrs | undefined>(view: ViewRule<A>): SparsityRule<A> {
  return ({ argShapes: [argShape], shape, attrs }) => {
    const mapping = view(argShape, attrs, { offset: 0, strides: stridesOf(argShape) });
    if (mapping === undefined) return ["all"];
    return [{ indices: walkBounded(shape, mapping.strides, mapping.offset, mapping.bounds) }];
  };
}

/**
 * Padding without interior spacing is its operand read through a shifted window, bounded by the
 * operand's extent (its view rule, as a map); interior spacing goes through the kernel.
 */
export const padSparsity: SparsityRule<{ before: number[]; interior: number[] }> = (spec) => {
  const {
    argShapes: [argShape],
    shape,
    attrs,
  } = spec;
  if (attrs.interior.some((s) => s !== 0)) return movedSparsity(spec);
  const strides = stridesOf(argShape);
  const offset = -attrs.before.reduce((acc, b, i) => acc + b * strides[i], 0);
  const bounds = argShape.map((d, i): [number, number] => [attrs.before[i], attrs.before[i] + d]);
  return [{ indices: walkBounded(shape, strides, offset, bounds) }];
};

/** walkStrided with −1 (the fill) wherever an output index falls outside `bounds` on some axis. */
function walkBounded(
  shape: Shape,
  strides: readonly number[],
  offset: number,
  bounds: readonly [number, number][] | undefined,
): Int32Array {
  const indices = walkStrided(shape, strides, offset);
  if (bounds === undefined) return indices;
  if (shape.length === 1) {
    indices.fill(-1, 0, Math.max(0, bounds[0][0]));
    indices.fill(-1, Math.min(shape[0], bounds[0][1]));
    return indices;
  }
  const index = new Int32Array(shape.length);
  for (let i = 0; i < indices.length; i++) {
    for (let ax = 0; ax < shape.length; ax++) {
      if (index[ax] < bounds[ax][0] || index[ax] >= bounds[ax][1]) {
        indices[i] = -1;
        break;
      }
    }
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      if (++index[ax] < shape[ax]) break;
      index[ax] = 0;
    }
  }
  return indices;
}

/**
 * Ops that only move elements (concat, gather, pad): the op's kernel, run on each float operand
 * filled with its own element numbers (and zero fill, through the op's linear part), says where
 * every output element came from. Integer operands must be constants, since their values decide
 * the map; otherwise every element may be read.
 */
export function movedSparsity<A extends Attrs | undefined>(spec: SparsitySpec<A>): LocalSparsity {
  const { argShapes, argTypes, shape, constants, op } = spec;
  const floats = argTypes.map((t) => t === "float");
  if (op.kernel === undefined || argTypes.some((t, k) => t === "int" && constants[k] === undefined)) {
    return floats.map((f) => (f ? "all" : null));
  }
  const attrs = op.linearPart ? op.linearPart(spec.attrs) : spec.attrs;
  const run = op.kernel({ argShapes, shape, attrs, float32: false });
  // Plain loops, not typed-array from(…, fn): at 10⁵ elements the callbacks cost more than the kernel.
  return argShapes.map((s, k) => {
    if (!floats[k]) return null;
    const args: TensorData[] = argShapes.map((other, j) => {
      if (!floats[j]) return Int32Array.from(constants[j] as Float64Array);
      if (j !== k) return new Float64Array(sizeOf(other));
      const numbers = new Float64Array(sizeOf(s));
      for (let i = 0; i < numbers.length; i++) numbers[i] = i + 1;
      return numbers;
    });
    const out = new Float64Array(sizeOf(shape));
    run(args, out);
    const indices = new Int32Array(out.length);
    for (let i = 0; i < out.length; i++) indices[i] = out[i] - 1;
    return { indices };
  });
}

/** A map's rows turned into columns: which output elements read each operand element. */
export function transposeMap(map: OperandMap, rows: number, operandSize: number): OperandMap {
  const counts = new Int32Array(operandSize + 1);
  forEachEntry(map, rows, (_r, e) => {
    counts[e + 1]++;
  });
  for (let i = 0; i < operandSize; i++) counts[i + 1] += counts[i];
  const indices = new Int32Array(counts[operandSize]);
  const fill = counts.slice(0, operandSize);
  forEachEntry(map, rows, (r, e) => {
    indices[fill[e]++] = r;
  });
  return { indptr: counts, indices };
}

function forEachEntry(map: OperandMap, rows: number, visit: (row: number, element: number) => void): void {
  for (let r = 0; r < rows; r++) {
    const row = map.rowOf ? map.rowOf[r] : r;
    if (map.indptr === undefined) {
      if (map.indices[row] >= 0) visit(r, map.indices[row]);
    } else for (let p = map.indptr[row]; p < map.indptr[row + 1]; p++) visit(r, map.indices[p]);
  }
}

/** For every element of `shape`, its fibre: the element of the reduction over `axes` it feeds. */
export function fibreOf(shape: Shape, axes: readonly number[]): Int32Array {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const strides = stridesOf(kept).map((s, i) => (axes.includes(i) ? 0 : s));
  return walkStrided(shape, strides, 0);
}

/** Reductions: each output element reads its whole fibre. */
export function reductionMap(shape: Shape, axes: readonly number[]): OperandMap {
  const fibre = fibreOf(shape, axes);
  const outputs = sizeOf(shape.filter((_, i) => !axes.includes(i)));
  return transposeMap({ indices: fibre }, fibre.length, outputs);
}

/** Ops along an axis (softmax, prod_others): each element reads every element of its own fibre. */
export function sameFibreMap(shape: Shape, axes: readonly number[]): OperandMap {
  const fibre = fibreOf(shape, axes);
  return { ...reductionMap(shape, axes), rowOf: fibre };
}
