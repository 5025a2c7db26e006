import type { Attrs, DType, Shape } from "../ops/types.js";

/**
 * One node of the IR. Node ids are indices into `Graph.nodes`, which is always in a topological
 * order (every operand precedes its user), so passes walk the array forwards or backwards.
 */
export interface IrNode {
  /** An op name from the op table, or the two sources `input` and `const`. */
  readonly op: string;
  readonly args: readonly number[];
  readonly attrs: Attrs | undefined;
  readonly shape: Shape;
  readonly dtype: DType;
  /** `const` nodes: a scalar, or row-major data for a tensor constant. */
  readonly value?: number;
  readonly data?: Float64Array;
  /** `input` nodes: the input's name. */
  readonly name?: string;
  /** The client's name for the node (its JSON id), used in messages and the trace. */
  readonly label?: string;
}

export interface NamedNode {
  readonly name: string;
  readonly node: number;
}

export class Graph {
  constructor(
    readonly nodes: readonly IrNode[],
    readonly inputs: readonly NamedNode[],
    readonly outputs: readonly NamedNode[],
  ) {}

  get size(): number {
    return this.nodes.length;
  }

  inputNamed(name: string): NamedNode | undefined {
    return this.inputs.find((i) => i.name === name);
  }

  /** Number of nodes that compute something (neither an input nor a constant). */
  get opCount(): number {
    let n = 0;
    for (const node of this.nodes) if (node.op !== "input" && node.op !== "const") n++;
    return n;
  }

  /** True when every node is a scalar: such graphs run on the scalar fast path. */
  get isScalar(): boolean {
    for (const node of this.nodes) if (node.shape.length !== 0) return false;
    return true;
  }
}

/** Stable JSON with sorted keys, for hashing and keying attributes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number") return formatNumberKey(value);
    return JSON.stringify(value) ?? "null";
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/** A number as a key: distinguishes −0 from 0 and keeps NaN and the infinities. */
export function formatNumberKey(v: number): string {
  return Object.is(v, -0) ? "-0" : String(v);
}
