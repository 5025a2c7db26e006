import { deserialize, serialize } from "node:v8";
import type { Attrs, DType } from "../ops/types.js";
import { Graph, type IrNode } from "./graph.js";

/**
 * A graph in one block of shared memory, to cross between threads: its numbers (op and type indices,
 * operands, shapes, constants) as arrays, and the little else (names, labels, attributes) as one small
 * serialised object. For a function of 96,000 nodes, v8.serialize of the node objects took 70–130 ms
 * and deserialize 135–270.
 *
 * Layout: five int32 counts (nodes, operands, dimensions, constant data, bytes of the rest), the int32
 * columns (op, dtype, flags per node; operand and dimension offsets and values), padding to 8 bytes,
 * the float64 columns (scalar value per node, tensor constant data with their offsets among the ints),
 * then the rest.
 */
const HAS_VALUE = 1;
const HAS_DATA = 2;

interface Rest {
  readonly ops: string[];
  readonly dtypes: DType[];
  readonly attrs: [number, Attrs][];
  readonly names: [number, string][];
  readonly labels: [number, string][];
  readonly inputs: Graph["inputs"];
  readonly outputs: Graph["outputs"];
}

export function encodeGraph(graph: Graph): SharedArrayBuffer {
  const nodes = graph.nodes;
  const n = nodes.length;
  const rest: Rest = { ops: [], dtypes: [], attrs: [], names: [], labels: [], inputs: graph.inputs, outputs: graph.outputs };
  const opIndex = new Map<string, number>();
  const dtypeIndex = new Map<DType, number>();
  const indexOf = <K>(map: Map<K, number>, list: K[], key: K) => {
    let i = map.get(key);
    if (i === undefined) {
      i = list.push(key) - 1;
      map.set(key, i);
    }
    return i;
  };
  let args = 0;
  let dims = 0;
  let data = 0;
  for (const node of nodes) {
    args += node.args.length;
    dims += node.shape.length;
    data += node.data?.length ?? 0;
  }
  nodes.forEach((node, id) => {
    if (node.attrs !== undefined) rest.attrs.push([id, node.attrs]);
    if (node.name !== undefined) rest.names.push([id, node.name]);
    if (node.label !== undefined) rest.labels.push([id, node.label]);
  });
  const ints = 3 * n + (n + 1) + args + (n + 1) + dims + (n + 1);
  const head = 5 * 4 + ints * 4;
  const floatsAt = head + (head % 8 === 0 ? 0 : 4);
  const columnsEnd = floatsAt + (n + data) * 8;
  // The rest needs the ops and dtypes indexed first: write the int columns, then serialise it.
  const scratch = new Int32Array(ints);
  const [op, dtype, flags] = [0, n, 2 * n];
  let argStart = 3 * n;
  let argAt = argStart + n + 1;
  let dimStart = argAt + args;
  let dimAt = dimStart + n + 1;
  let dataStart = dimAt + dims;
  let dataAt = 0;
  nodes.forEach((node, id) => {
    scratch[op + id] = indexOf(opIndex, rest.ops, node.op);
    scratch[dtype + id] = indexOf(dtypeIndex, rest.dtypes, node.dtype);
    scratch[flags + id] = (node.value !== undefined ? HAS_VALUE : 0) | (node.data !== undefined ? HAS_DATA : 0);
    scratch[argStart++] = argAt;
    for (const a of node.args) scratch[argAt++] = a;
    scratch[dimStart++] = dimAt;
    for (const d of node.shape) scratch[dimAt++] = d;
    scratch[dataStart++] = dataAt;
    dataAt += node.data?.length ?? 0;
  });
  scratch[argStart] = argAt;
  scratch[dimStart] = dimAt;
  scratch[dataStart] = dataAt;
  const restBytes = serialize(rest);
  const shared = new SharedArrayBuffer(columnsEnd + restBytes.byteLength);
  new Int32Array(shared, 0, 5).set([n, args, dims, data, restBytes.byteLength]);
  new Int32Array(shared, 20, ints).set(scratch);
  const floats = new Float64Array(shared, floatsAt, n + data);
  let at = n;
  nodes.forEach((node, id) => {
    floats[id] = node.value ?? 0;
    if (node.data !== undefined) {
      floats.set(node.data, at);
      at += node.data.length;
    }
  });
  new Uint8Array(shared, columnsEnd).set(restBytes);
  return shared;
}

export function decodeGraph(shared: SharedArrayBuffer): Graph {
  const [n, args, dims, data, restLength] = new Int32Array(shared, 0, 5);
  const ints = 3 * n + (n + 1) + args + (n + 1) + dims + (n + 1);
  const head = 5 * 4 + ints * 4;
  const floatsAt = head + (head % 8 === 0 ? 0 : 4);
  const columnsEnd = floatsAt + (n + data) * 8;
  const column = new Int32Array(shared, 20, ints);
  const floats = new Float64Array(shared, floatsAt, n + data);
  const rest = deserialize(new Uint8Array(new Uint8Array(shared, columnsEnd, restLength))) as Rest;
  const attrs = new Map(rest.attrs);
  const names = new Map(rest.names);
  const labels = new Map(rest.labels);
  const argStart = 3 * n;
  const dimStart = argStart + n + 1 + args;
  const dataStart = dimStart + n + 1 + dims;
  const nodes = new Array<IrNode>(n);
  for (let id = 0; id < n; id++) {
    const flags = column[2 * n + id];
    const node: { -readonly [K in keyof IrNode]: IrNode[K] } = {
      op: rest.ops[column[id]],
      args: slice(column, column[argStart + id], column[argStart + id + 1]),
      attrs: attrs.get(id),
      shape: slice(column, column[dimStart + id], column[dimStart + id + 1]),
      dtype: rest.dtypes[column[n + id]],
    };
    if (flags & HAS_VALUE) node.value = floats[id];
    if (flags & HAS_DATA) node.data = floats.slice(n + column[dataStart + id], n + column[dataStart + id + 1]);
    const name = names.get(id);
    if (name !== undefined) node.name = name;
    const label = labels.get(id);
    if (label !== undefined) node.label = label;
    nodes[id] = node;
  }
  return new Graph(nodes, rest.inputs, rest.outputs);
}

/** A plain loop: Array.from on a typed array goes through its iterator, several times slower here. */
function slice(column: Int32Array, from: number, to: number): number[] {
  const out = new Array<number>(to - from);
  for (let i = from; i < to; i++) out[i - from] = column[i];
  return out;
}
