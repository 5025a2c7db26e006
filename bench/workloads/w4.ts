import type { JsonGraph, JsonNode } from "../../src/ir/json-graph.js";
import { lcg } from "./lcg.js";

/**
 * W4: a random scalar DAG of 10,000 nodes over 100 inputs (../shared/workloads.md). The description
 * leaves some details open; this is the reading that reproduces the published output
 * 42.0463391605263 (we get 42.04633916052625):
 *
 * - one generator, seed 777; inputs first: 100 draws, xᵢ = 2r − 1;
 * - per node, draws in this order: the op (one draw against the cumulative probabilities add 0.20,
 *   sub 0.15, mul 0.25, sin 0.10, cos 0.10, tanh 0.10, exp 0.10), then per operand (one for sin, cos,
 *   tanh, exp; two for add, sub, mul, first operand first) a draw r₁ and a draw r₂;
 * - operands come from all earlier values, the 100 inputs included (so the pool has n = 100 + i
 *   entries for node i): r₁ < ½ picks one of the 64 most recent, entry n − 1 − ⌊64·r₂⌋; otherwise
 *   any earlier one, entry ⌊n·r₂⌋;
 * - exp of an operand with |a| > 1.3 becomes tanh(a); any result with |r| > 4 becomes tanh(a) (a is
 *   the first operand). The node's op is then tanh: the DAG records the op actually computed;
 * - output: the last 100 nodes summed left to right (((n₀ + n₁) + n₂) + …).
 */

export const W4_INPUTS = 100;
export const W4_NODES = 10_000;
export const W4_SUMMED = 100;
export const W4_SEED = 777;
/** The output at the generated point, as published. */
export const W4_REFERENCE_OUTPUT = 42.0463391605263;

export const W4_OPS = ["add", "sub", "mul", "sin", "cos", "tanh", "exp"] as const;
export type W4Op = (typeof W4_OPS)[number];
export const ADD = 0;
export const SUB = 1;
export const MUL = 2;
export const SIN = 3;
export const COS = 4;
export const TANH = 5;
export const EXP = 6;
const PROBABILITIES = [0.2, 0.15, 0.25, 0.1, 0.1, 0.1, 0.1];

export interface W4Dag {
  /** The generated point, one value per input. */
  readonly inputs: Float64Array;
  /** Per node: op code (index into W4_OPS) and operands as value indices (inputs 0..99, node i is 100 + i); b is −1 for unary ops. */
  readonly op: Uint8Array;
  readonly a: Int32Array;
  readonly b: Int32Array;
  /** Every value at the generated point: inputs, then nodes. */
  readonly values: Float64Array;
  /** The sum of the last 100 nodes at the generated point. */
  readonly output: number;
}

export function isBinary(op: number): boolean {
  return op <= MUL;
}

export function generateW4(): W4Dag {
  const rnd = lcg(W4_SEED);
  const total = W4_INPUTS + W4_NODES;
  const values = new Float64Array(total);
  for (let i = 0; i < W4_INPUTS; i++) values[i] = 2 * rnd() - 1;
  const op = new Uint8Array(W4_NODES);
  const a = new Int32Array(W4_NODES);
  const b = new Int32Array(W4_NODES).fill(-1);
  let n = W4_INPUTS;
  const operand = (): number => {
    const recent = rnd() < 0.5;
    const r = rnd();
    return recent ? n - 1 - Math.floor(r * Math.min(64, n)) : Math.floor(r * n);
  };
  for (let i = 0; i < W4_NODES; i++, n++) {
    const r = rnd();
    let code = EXP;
    let cumulative = 0;
    for (let k = 0; k < PROBABILITIES.length; k++) {
      cumulative += PROBABILITIES[k];
      if (r < cumulative) {
        code = k;
        break;
      }
    }
    const x = operand();
    const y = isBinary(code) ? operand() : -1;
    const va = values[x];
    const vb = y >= 0 ? values[y] : 0;
    let v: number;
    if (code === EXP && Math.abs(va) > 1.3) code = TANH;
    v = apply(code, va, vb);
    if (Math.abs(v) > 4) {
      code = TANH;
      v = Math.tanh(va);
    }
    op[i] = code;
    a[i] = x;
    b[i] = code === TANH && y >= 0 ? -1 : y;
    values[n] = v;
  }
  return { inputs: values.slice(0, W4_INPUTS), op, a, b, values, output: sumLast(values) };
}

export function apply(code: number, x: number, y: number): number {
  switch (code) {
    case ADD:
      return x + y;
    case SUB:
      return x - y;
    case MUL:
      return x * y;
    case SIN:
      return Math.sin(x);
    case COS:
      return Math.cos(x);
    case TANH:
      return Math.tanh(x);
    default:
      return Math.exp(x);
  }
}

/** The output from a full value array (inputs then nodes). */
export function sumLast(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = values.length - W4_SUMMED; i < values.length; i++) s += values[i];
  return s;
}

/** The names of the inputs: x0 … x99. */
export function w4InputName(i: number): string {
  return `x${i}`;
}

/** The DAG in the JSON graph format of the HTTP API (node ids n0 …, output f), e.g. for load tests. */
export function w4JsonGraph(dag: W4Dag): JsonGraph {
  const name = (k: number) => (k < W4_INPUTS ? w4InputName(k) : `n${k - W4_INPUTS}`);
  const nodes: JsonNode[] = [];
  for (let i = 0; i < dag.op.length; i++) {
    const args = dag.b[i] >= 0 ? [name(dag.a[i]), name(dag.b[i])] : [name(dag.a[i])];
    nodes.push({ id: name(W4_INPUTS + i), op: W4_OPS[dag.op[i]], args });
  }
  const first = W4_INPUTS + W4_NODES - W4_SUMMED;
  let acc = name(first);
  for (let k = first + 1; k < W4_INPUTS + W4_NODES; k++) {
    const id = k === W4_INPUTS + W4_NODES - 1 ? "f" : `s${k - first}`;
    nodes.push({ id, op: "add", args: [acc, name(k)] });
    acc = id;
  }
  return { inputs: Array.from({ length: W4_INPUTS }, (_, i) => w4InputName(i)), nodes, outputs: ["f"] };
}
