import { AdjointError, invalid } from "../errors.js";
import { checkName } from "../names.js";
import { findOp, suggestOps } from "../ops/registry.js";
import type { Attrs, DType, Shape } from "../ops/types.js";
import { decodeConstantLiteral } from "../tensor/literal.js";
import { GraphBuilder } from "./builder.js";
import type { Graph } from "./graph.js";

/**
 * The JSON graph format (schema: docs/graph.schema.json). Designed to be easy to emit from any
 * language: nodes may come in any order, operands are ids (or inline numbers), and every node is
 * named by the client so that errors can point at it.
 */
export interface JsonGraph {
  inputs: (string | JsonInput)[];
  nodes: JsonNode[];
  outputs: string | (string | { name: string; node: string })[];
}

export interface JsonInput {
  name: string;
  shape?: number[];
  dtype?: "float" | "int";
}

export interface JsonNode {
  id: string;
  op: string;
  args?: (string | number)[];
  attrs?: Record<string, unknown>;
  /** const nodes: a number, nested arrays, or { shape, data }. */
  value?: unknown;
}

const ID_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

type NodeEntry = { node: JsonNode; index: number };

/** Reads and validates a JSON graph into the IR; every error names the node or field at fault. */
export function readJsonGraph(raw: unknown): Graph {
  if (!isObject(raw)) throw invalid("the graph must be an object with inputs, nodes and outputs", { field: "graph" });
  for (const key of Object.keys(raw)) {
    if (!["inputs", "nodes", "outputs", "description"].includes(key)) {
      throw invalid(`unknown field ${key}; a graph has inputs, nodes, outputs and an optional description`, { field: key });
    }
  }
  const b = new GraphBuilder();
  const ids = new Map<string, number>();
  readInputs(b, raw.inputs, ids);
  const byId = readNodes(raw.nodes, ids);
  // Check every reference before building, so a dangling id is reported as such and not as a cycle.
  checkReferences(byId, ids);
  buildInOrder(b, byId, ids);
  const outputs = readOutputs(raw.outputs, ids);
  return b.build(outputs);
}

/** Declares each input on the builder and records its id under its name. */
function readInputs(b: GraphBuilder, raw: unknown, ids: Map<string, number>): void {
  if (!Array.isArray(raw)) throw invalid("inputs must be an array of names or {name, shape, dtype}", { field: "inputs" });
  raw.forEach((entry, i) => {
    const field = `inputs[${i}]`;
    const decl: JsonInput | undefined =
      typeof entry === "string" ? { name: entry } : isObject(entry) ? (entry as unknown as JsonInput) : undefined;
    if (!decl || typeof decl.name !== "string" || !ID_PATTERN.test(decl.name)) {
      throw invalid(`${field}: an input needs a name made of letters, digits and _ (starting with a letter or _)`, { field });
    }
    checkName(decl.name, typeof entry === "string" ? field : `${field}.name`);
    if (ids.has(decl.name)) throw invalid(`${field}: input ${decl.name} is declared twice`, { field, input: decl.name });
    const shape = readShape(decl.shape, `${field}.shape`);
    const dtype = readDType(decl.dtype, `${field}.dtype`);
    ids.set(decl.name, b.input(decl.name, shape, dtype));
  });
}

/** The nodes by id, each checked on its own (references are checked once all are known). */
function readNodes(raw: unknown, ids: ReadonlyMap<string, number>): Map<string, NodeEntry> {
  if (!Array.isArray(raw)) throw invalid("nodes must be an array", { field: "nodes" });
  const nodes = raw as unknown[];
  const byId = new Map<string, NodeEntry>();
  nodes.forEach((entry, index) => {
    const node = readNode(entry, index, ids, byId);
    byId.set(node.id, { node, index });
  });
  return byId;
}

function readNode(entry: unknown, index: number, ids: ReadonlyMap<string, number>, byId: ReadonlyMap<string, NodeEntry>): JsonNode {
  const field = `nodes[${index}]`;
  if (!isObject(entry)) throw invalid(`${field}: a node must be an object with id and op`, { field });
  const node = entry as unknown as JsonNode;
  if (typeof node.id !== "string" || !ID_PATTERN.test(node.id)) {
    throw invalid(`${field}: id must be a string of letters, digits, _ . : - (starting with a letter or _)`, { field: `${field}.id` });
  }
  checkName(node.id, `${field}.id`);
  if (ids.has(node.id)) throw invalid(`node ${node.id}: the id is already used by an input`, { node: node.id, field: `${field}.id` });
  if (byId.has(node.id))
    throw invalid(`node ${node.id}: duplicate id (also nodes[${byId.get(node.id)?.index}])`, { node: node.id, field: `${field}.id` });
  for (const key of Object.keys(node)) {
    if (!["id", "op", "args", "attrs", "value", "description"].includes(key)) {
      throw invalid(`node ${node.id}: unknown field ${key}`, { node: node.id, field: `${field}.${key}` });
    }
  }
  if (typeof node.op !== "string") throw invalid(`node ${node.id}: op must be a string`, { node: node.id, field: `${field}.op` });
  if (node.op !== "const" && !findOp(node.op)) {
    const hint = suggestOps(node.op);
    throw invalid(`node ${node.id}: unknown op ${node.op}${hint.length ? `; did you mean ${hint.join(", ")}?` : ""}`, {
      node: node.id,
      field: `${field}.op`,
    });
  }
  if (node.args !== undefined && !Array.isArray(node.args)) {
    throw invalid(`node ${node.id}: args must be an array of ids or numbers`, { node: node.id, field: `${field}.args` });
  }
  if (node.attrs !== undefined && !isObject(node.attrs)) {
    throw invalid(`node ${node.id}: attrs must be an object`, { node: node.id, field: `${field}.attrs` });
  }
  for (const key of Object.keys(node.attrs ?? {})) checkName(key, `${field}.attrs.${key}`);
  return node;
}

/** Every operand is a finite number or a known id. */
function checkReferences(byId: ReadonlyMap<string, NodeEntry>, ids: ReadonlyMap<string, number>): void {
  for (const { node, index } of byId.values()) {
    (node.args ?? []).forEach((arg, k) => {
      const field = `nodes[${index}].args[${k}]`;
      if (typeof arg === "number") {
        if (!Number.isFinite(arg)) throw invalid(`node ${node.id}: operand ${k} is not a finite number`, { node: node.id, field });
      } else if (typeof arg !== "string") {
        throw invalid(`node ${node.id}: operand ${k} must be an id or a number`, { node: node.id, field });
      } else if (!ids.has(arg) && !byId.has(arg)) {
        throw invalid(`node ${node.id}: operand ${k} refers to unknown id ${arg}`, { node: node.id, field });
      }
    });
  }
}

/** Builds every node after its operands, whatever order they came in; a cycle is an error naming it. */
function buildInOrder(b: GraphBuilder, byId: ReadonlyMap<string, NodeEntry>, ids: Map<string, number>): void {
  const state = new Map<string, "visiting" | "done">();
  for (const id of byId.keys()) if (!state.has(id)) buildFrom(id, b, byId, ids, state);
}

/**
 * Depth-first build from `start` in dependency order; a node met again while on the path closes a
 * cycle. Iterative, so that a long chain of nodes cannot overflow the call stack.
 */
function buildFrom(
  start: string,
  b: GraphBuilder,
  byId: ReadonlyMap<string, NodeEntry>,
  ids: Map<string, number>,
  state: Map<string, "visiting" | "done">,
): void {
  const path: string[] = [];
  const stack: { id: string; next: number }[] = [{ id: start, next: 0 }];
  state.set(start, "visiting");
  path.push(start);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const { node, index } = byId.get(top.id) as NodeEntry;
    const args = node.args ?? [];
    if (top.next < args.length) {
      const arg = args[top.next++];
      if (typeof arg !== "string" || ids.has(arg)) continue;
      const s = state.get(arg);
      if (s === "visiting") {
        const cycle = [...path.slice(path.indexOf(arg)), arg];
        throw invalid(`node ${arg}: the graph has a cycle: ${cycle.join(" → ")}`, { node: arg, field: `nodes[${byId.get(arg)?.index}]` });
      }
      if (s === undefined) {
        state.set(arg, "visiting");
        path.push(arg);
        stack.push({ id: arg, next: 0 });
      }
      continue;
    }
    ids.set(top.id, buildNode(b, node, index, ids));
    state.set(top.id, "done");
    path.pop();
    stack.pop();
  }
}

function buildNode(b: GraphBuilder, node: JsonNode, index: number, ids: ReadonlyMap<string, number>): number {
  const field = `nodes[${index}]`;
  if (node.op === "const") {
    if (node.args?.length) throw invalid(`node ${node.id}: a const takes no operands`, { node: node.id, field: `${field}.args` });
    if (node.value === undefined) throw invalid(`node ${node.id}: a const needs a value`, { node: node.id, field: `${field}.value` });
    try {
      const c = decodeConstantLiteral(node.value);
      return c.shape.length === 0 ? b.constant(c.data[0], node.id) : b.tensorConstant(c.shape, c.data, "float", node.id);
    } catch (e) {
      if (e instanceof AdjointError) throw invalid(`node ${node.id}: ${e.message}`, { node: node.id, field: `${field}.value` });
      throw e;
    }
  }
  if (node.value !== undefined) throw invalid(`node ${node.id}: only const nodes have a value`, { node: node.id, field: `${field}.value` });
  const args = (node.args ?? []).map((a) => (typeof a === "number" ? b.constant(a) : (ids.get(a) as number)));
  return b.op(node.op, args, node.attrs as Attrs | undefined, node.id);
}

function readOutputs(raw: unknown, ids: ReadonlyMap<string, number>): { name: string; node: number }[] {
  const list = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(list) || list.length === 0) {
    throw invalid("outputs must name at least one node (an id, or {name, node})", { field: "outputs" });
  }
  const names = new Set<string>();
  return list.map((entry, i) => {
    const field = `outputs[${i}]`;
    const out = typeof entry === "string" ? { name: entry, node: entry } : isObject(entry) ? entry : undefined;
    if (!out || typeof out.name !== "string" || typeof out.node !== "string") {
      throw invalid(`${field}: an output is a node id or {name, node}`, { field });
    }
    checkName(out.name, typeof entry === "string" ? field : `${field}.name`);
    const node = ids.get(out.node);
    if (node === undefined) throw invalid(`${field}: output ${out.name} refers to unknown id ${out.node}`, { field, node: out.node });
    if (names.has(out.name)) throw invalid(`${field}: output name ${out.name} is used twice`, { field });
    names.add(out.name);
    return { name: out.name, node };
  });
}

function readShape(raw: unknown, field: string): Shape {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || !raw.every((d) => Number.isInteger(d) && d >= 0)) {
    throw invalid(`${field}: a shape is an array of non-negative integers`, { field });
  }
  return raw as number[];
}

function readDType(raw: unknown, field: string): DType {
  if (raw === undefined || raw === "float") return "float";
  if (raw === "int") return "int";
  throw invalid(`${field}: dtype is "float" (the request chooses float64 or float32) or "int"`, { field });
}
