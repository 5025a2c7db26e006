import { AdjointError, invalid, OpRuleError } from "../errors.js";
import { evaluateScalar } from "../ops/evaluate.js";
import { findOp, suggestOps } from "../ops/registry.js";
import { type Attrs, arityRange, type DType, type OpDef, type RuleBuilder, type Shape } from "../ops/types.js";
import { formatShape, sameShape } from "../tensor/shape.js";
import { type Budget, BudgetExceeded, extentError, extentOf, MAX_DIMENSION, nodeBudgetError } from "./budget.js";
import { canonicalJson, formatNumberKey, Graph, type IrNode, type NamedNode } from "./graph.js";

/**
 * Builds graphs node by node. Every node is hash-consed (an identical op on identical operands is
 * one node), shape-checked by its op's rule, and simplified where the result is exact (x·1, x+0,
 * constant folding), so that derivative graphs stay small without a separate optimisation pass.
 */
export class GraphBuilder implements RuleBuilder {
  private readonly nodeList: IrNode[] = [];
  private readonly byKey = new Map<string, number>();
  private readonly inputList: NamedNode[] = [];

  /**
   * With a budget, the builder refuses to grow past `budget.maxNodes` nodes or to make a node whose
   * loop would iterate more than `budget.maxElements`: derivations are refused as they build, not
   * after a graph of unbounded size exists.
   */
  constructor(private readonly budget?: Budget) {}

  /** Starts from an existing graph; its node ids stay valid, new nodes are appended. */
  static extend(graph: Graph, budget?: Budget): GraphBuilder {
    const b = new GraphBuilder(budget);
    if (budget && graph.nodes.length > budget.maxNodes) throw nodeBudgetError(budget);
    for (const node of graph.nodes) {
      const id = b.nodeList.length;
      b.nodeList.push(node);
      b.byKey.set(b.keyOf(node.op, node.args, node.attrs, node), id);
    }
    b.inputList.push(...graph.inputs);
    return b;
  }

  get nodes(): readonly IrNode[] {
    return this.nodeList;
  }

  get inputs(): readonly NamedNode[] {
    return this.inputList;
  }

  node(id: number): IrNode {
    return this.nodeList[id];
  }

  shape(id: number): Shape {
    return this.nodeList[id].shape;
  }

  dtype(id: number): DType {
    return this.nodeList[id].dtype;
  }

  /** The value of a scalar constant node, or undefined. */
  constValue(id: number): number | undefined {
    const n = this.nodeList[id];
    return n.op === "const" && n.data === undefined ? n.value : undefined;
  }

  input(name: string, shape: Shape = [], dtype: DType = "float"): number {
    const existing = this.inputList.find((i) => i.name === name);
    if (existing) {
      const node = this.nodeList[existing.node];
      if (!sameShape(node.shape, shape) || node.dtype !== dtype) {
        throw invalid(`input ${name} is declared twice with different shapes or types`, { input: name });
      }
      return existing.node;
    }
    this.checkShape(shape, `input ${name}`, undefined);
    const id = this.push({ op: "input", args: [], attrs: undefined, shape: [...shape], dtype, name }, `input:${name}`);
    this.inputList.push({ name, node: id });
    return id;
  }

  constant(value: number, label?: string): number {
    return this.intern({ op: "const", args: [], attrs: undefined, shape: [], dtype: "float", value, label });
  }

  tensorConstant(shape: Shape, data: Float64Array, dtype: DType = "float", label?: string): number {
    return this.intern({ op: "const", args: [], attrs: undefined, shape: [...shape], dtype, data, label });
  }

  /** An integer tensor constant (indices, labels). */
  tensorConstantInt(shape: Shape, values: readonly number[], label?: string): number {
    return this.tensorConstant(shape, Float64Array.from(values), "int", label);
  }

  add(a: number, b: number): number {
    return this.op("add", [a, b]);
  }
  sub(a: number, b: number): number {
    return this.op("sub", [a, b]);
  }
  mul(a: number, b: number): number {
    return this.op("mul", [a, b]);
  }
  div(a: number, b: number): number {
    return this.op("div", [a, b]);
  }
  neg(a: number): number {
    return this.op("neg", [a]);
  }

  /**
   * Adds (or finds) the node `name(args)`. `label` is the client's id for the node: errors from the
   * op's shape and attribute rules name it.
   */
  op(name: string, args: readonly number[], attrs?: Attrs, label?: string): number {
    const def = findOp(name);
    const where = label === undefined ? `op ${name}` : `node ${label} (${name})`;
    if (!def) {
      const hint = suggestOps(name);
      throw invalid(`${where}: unknown op${hint.length ? `; did you mean ${hint.join(", ")}?` : ""}`, { node: label });
    }
    const { min, max } = arityRange(def);
    if (args.length < min || args.length > max) {
      const expected = min === max ? `${min}` : max === Number.POSITIVE_INFINITY ? `at least ${min}` : `${min} to ${max}`;
      throw invalid(`${where}: expects ${expected} operand${expected === "1" ? "" : "s"}, got ${args.length}`, { node: label });
    }
    const argShapes = args.map((a) => this.nodeList[a].shape);
    const argTypes = args.map((a) => this.nodeList[a].dtype);
    try {
      const normalized = normalizeAttrs(def, attrs, argShapes, argTypes);
      if (def.expand) return def.expand(this, args, normalized);
      const shape = def.shape ? def.shape(argShapes, normalized) : argShapes[0];
      const dtype = def.dtype ? def.dtype(argTypes, normalized) : "float";
      this.checkShape(shape, where, label);
      const simpler = this.simplify(def, args, shape);
      if (simpler !== undefined) return simpler;
      return this.intern({ op: def.name, args: [...args], attrs: normalized, shape, dtype, label });
    } catch (e) {
      if (e instanceof BudgetExceeded) throw e;
      if (e instanceof OpRuleError) {
        const shapes = argShapes.map(formatShape).join(", ");
        throw invalid(`${where}: ${e.message}${e.message.includes("[") ? "" : ` (operand shapes ${shapes})`}`, {
          node: label,
          field: e.field,
        });
      }
      if (e instanceof AdjointError && label !== undefined && e.location.node === undefined) {
        throw invalid(`${where}: ${e.message}`, { ...e.location, node: label });
      }
      throw e;
    }
  }

  /** A graph of the given outputs, pruned and put in a canonical order: inputs, then evaluation order. */
  build(outputs: readonly NamedNode[]): Graph {
    const order: number[] = [];
    const placed = new Uint8Array(this.nodeList.length);
    for (const input of this.inputList) {
      placed[input.node] = 1;
      order.push(input.node);
    }
    // Iterative post-order DFS: operands in order, then the node, so evaluation order reads naturally.
    for (const out of outputs) {
      const stack: [number, number][] = [[out.node, 0]];
      while (stack.length) {
        const top = stack[stack.length - 1];
        const [id, next] = top;
        if (placed[id]) {
          stack.pop();
          continue;
        }
        const args = this.nodeList[id].args;
        if (next < args.length) {
          top[1]++;
          if (!placed[args[next]]) stack.push([args[next], 0]);
        } else {
          placed[id] = 1;
          order.push(id);
          stack.pop();
        }
      }
    }
    const remap = new Int32Array(this.nodeList.length).fill(-1);
    order.forEach((old, i) => {
      remap[old] = i;
    });
    const nodes = order.map((old) => {
      const n = this.nodeList[old];
      return n.args.length === 0 ? n : { ...n, args: n.args.map((a) => remap[a]) };
    });
    return new Graph(
      nodes,
      this.inputList.map((i) => ({ name: i.name, node: remap[i.node] })),
      outputs.map((o) => ({ name: o.name, node: remap[o.node] })),
    );
  }

  /** The graph as built so far, ids unchanged (for derived graphs whose ids the trace maps back). */
  snapshot(outputs: readonly NamedNode[]): Graph {
    return new Graph(this.nodeList.slice(), this.inputList.slice(), outputs);
  }

  private push(node: IrNode, key: string): number {
    const id = this.nodeList.length;
    if (this.budget && id >= this.budget.maxNodes) throw nodeBudgetError(this.budget);
    this.nodeList.push(node);
    this.byKey.set(key, id);
    return id;
  }

  /**
   * Refuses absurd axes wherever a shape enters a graph (declared inputs, op results such as
   * broadcast_to and reshape), before anything is sized from it: an empty axis beside a huge one
   * holds no elements, yet loops over the tensor would still walk the huge one.
   */
  private checkShape(shape: Shape, where: string, label: string | undefined): void {
    for (const d of shape) {
      if (d > MAX_DIMENSION) {
        throw new BudgetExceeded(
          `${where}: shape ${formatShape(shape)} has an axis of ${d}; no axis may exceed ${MAX_DIMENSION}`,
          false,
          label === undefined ? {} : { node: label },
        );
      }
    }
    if (this.budget && extentOf(shape) > this.budget.maxElements) throw extentError(this.budget, shape, where, label);
  }

  private intern(node: IrNode): number {
    const key = this.keyOf(node.op, node.args, node.attrs, node);
    const found = this.byKey.get(key);
    if (found !== undefined) return found;
    return this.push(node, key);
  }

  private keyOf(op: string, args: readonly number[], attrs: Attrs | undefined, node: Partial<IrNode>): string {
    if (op === "input") return `input:${node.name}`;
    if (op === "const") {
      if (node.data) return `const:${node.dtype}:${formatShape(node.shape ?? [])}:${Array.from(node.data, formatNumberKey).join(",")}`;
      return `const:${formatNumberKey(node.value ?? 0)}`;
    }
    const def = findOp(op);
    const ordered = def?.commutative && args.length === 2 && args[0] > args[1] ? [args[1], args[0]] : args;
    return `${op}(${ordered.join(",")})${attrs ? canonicalJson(attrs) : ""}`;
  }

  /**
   * Exact simplifications only: each returns a node whose value equals the op's for every input.
   * Constant folding is generic; the rest is each op's own rule (OpDef.simplify).
   */
  private simplify(def: OpDef, args: readonly number[], shape: Shape): number | undefined {
    if (def.kind !== "elementwise" && !def.simplify) return undefined;
    const c = args.map((a) => this.constValue(a));
    // stop_gradient folds too: its template is the identity, so this finds the operand's own node.
    if (def.kind === "elementwise" && c.every((v) => v !== undefined)) return this.constant(evaluateScalar(def, c as number[]));
    return def.simplify?.(this, args, c, shape);
  }
}

function normalizeAttrs(def: OpDef, attrs: Attrs | undefined, shapes: readonly Shape[], types: readonly DType[]): Attrs | undefined {
  if (def.normalizeAttrs) return def.normalizeAttrs(attrs, shapes, types);
  if (attrs && Object.keys(attrs).length > 0) {
    throw new OpRuleError(`takes no attributes, got ${Object.keys(attrs).join(", ")}`, "attrs");
  }
  return undefined;
}
