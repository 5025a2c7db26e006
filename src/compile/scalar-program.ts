import type { Graph } from "../ir/graph.js";
import { scalarKernels } from "../ops/scalar-kernels.js";
import { elementwiseTable, formatLiteral, kernelExpression } from "./kernels-js.js";

export type Precision = "float64" | "float32";

type Slots = Float64Array | Float32Array;
type Interpreter = (code: Uint8Array, a: Int32Array, b: Int32Array, c: Int32Array, v: Slots, first: number, count: number) => void;
type Straight = (v: Slots) => void;

/** Graphs up to this many ops get straight-line code at once: generating it costs less than one slow call. */
export const CHUNK_OPS = 400;
/** Calls a large program runs interpreted before its generated code is built. */
const TIER_UP_AFTER = 16;
/** Once generated code exists, every Nth call tries it, letting V8 warm it up off the hot path. */
const PROBE_EVERY = 4;

let interpreterCache: { size: number; run: Interpreter } | undefined;

/**
 * The interpreter is generated from the op table: one `case` per elementwise op, each the op's own
 * template. So it needs no edit when an op is added, and it evaluates exactly what generated code does.
 */
function interpreter(): Interpreter {
  const { ops } = elementwiseTable();
  if (interpreterCache?.size === ops.length) return interpreterCache.run;
  const cases = ops
    .map((def, code) => {
      const arity = typeof def.arity === "number" ? def.arity : 2;
      const pre = arity === 3 ? "const z = v[c[i]]; " : "";
      return `case ${code}: { ${pre}v[first + i] = ${def.js?.(["x", "y", "z"])}; break; }`;
    })
    .join("\n      ");
  const body = `return function interpret(code, a, b, c, v, first, count) {
  for (let i = 0; i < count; i++) {
    const x = v[a[i]], y = v[b[i]];
    switch (code[i]) {
      ${cases}
    }
  }
};`;
  const run = new Function("H", body)(scalarKernels) as Interpreter;
  interpreterCache = { size: ops.length, run };
  return run;
}

/**
 * A compiled all-scalar graph: a flat array of value slots (inputs, then constants, then one slot per
 * op in evaluation order) and an instruction list of opcodes and slot indices. Nothing is allocated
 * per evaluation. Small programs run as generated straight-line JavaScript from the first call;
 * large ones start on the interpreter and move to generated chunks once those have proved faster.
 */
export class ScalarProgram {
  readonly slots: Slots;
  /** Graph node id → slot, or −1 for nodes the requested outputs do not need. */
  readonly slotOf: Int32Array;
  readonly inputSlots: Int32Array;
  readonly outputSlots: Int32Array;
  readonly opCount: number;
  readonly precision: Precision;

  private readonly code: Uint8Array;
  private readonly argA: Int32Array;
  private readonly argB: Int32Array;
  private readonly argC: Int32Array;
  private readonly firstOp: number;
  private readonly graph: Graph;
  private straight: Straight | undefined;
  private candidate: Straight | undefined;
  private calls = 0;
  private interpretedNs = 0;
  private tierOverride: "interpreter" | "codegen" | undefined;

  constructor(graph: Graph, outputs: readonly number[], options: { precision?: Precision; tier?: "interpreter" | "codegen" } = {}) {
    this.graph = graph;
    this.precision = options.precision ?? "float64";
    this.tierOverride = options.tier;
    const n = graph.nodes.length;
    const needed = new Uint8Array(n);
    for (const o of outputs) needed[o] = 1;
    for (let id = n - 1; id >= 0; id--) if (needed[id]) for (const a of graph.nodes[id].args) needed[a] = 1;

    const slotOf = new Int32Array(n).fill(-1);
    let next = 0;
    for (const input of graph.inputs) slotOf[input.node] = next++;
    const constants: number[] = [];
    graph.nodes.forEach((node, id) => {
      if (needed[id] && node.op === "const") {
        slotOf[id] = next++;
        constants.push(id);
      }
    });
    this.firstOp = next;
    const opIds: number[] = [];
    graph.nodes.forEach((node, id) => {
      if (needed[id] && node.args.length > 0) {
        slotOf[id] = next++;
        opIds.push(id);
      }
    });
    this.slotOf = slotOf;
    this.opCount = opIds.length;
    this.slots = this.precision === "float32" ? new Float32Array(next) : new Float64Array(next);
    for (const id of constants) this.slots[slotOf[id]] = graph.nodes[id].value as number;
    this.inputSlots = Int32Array.from(graph.inputs, (i) => slotOf[i.node]);
    this.outputSlots = Int32Array.from(outputs, (o) => slotOf[o]);

    const { codes } = elementwiseTable();
    this.code = new Uint8Array(opIds.length);
    this.argA = new Int32Array(opIds.length);
    this.argB = new Int32Array(opIds.length);
    this.argC = new Int32Array(opIds.length);
    opIds.forEach((id, i) => {
      const node = graph.nodes[id];
      const code = codes.get(node.op);
      if (code === undefined) throw new Error(`op ${node.op} has no scalar kernel`);
      this.code[i] = code;
      this.argA[i] = slotOf[node.args[0]];
      this.argB[i] = slotOf[node.args[1] ?? node.args[0]];
      this.argC[i] = slotOf[node.args[2] ?? node.args[0]];
    });
    if (this.tierOverride !== "interpreter" && (this.tierOverride === "codegen" || this.opCount <= CHUNK_OPS)) {
      this.straight = this.generate();
    }
  }

  /** Which tier the next call uses. */
  get tier(): "interpreter" | "codegen" {
    return this.straight ? "codegen" : "interpreter";
  }

  setInputs(values: ArrayLike<number>): void {
    const s = this.slots;
    const at = this.inputSlots;
    for (let i = 0; i < at.length; i++) s[at[i]] = values[i];
  }

  output(k: number): number {
    return this.slots[this.outputSlots[k]];
  }

  /** Evaluates at the inputs already in `slots`. */
  run(): void {
    const straight = this.straight;
    if (straight !== undefined) {
      straight(this.slots);
      return;
    }
    if (this.tierOverride === "interpreter") {
      this.interpret();
      return;
    }
    this.adaptiveRun();
  }

  /** Runs every op through the interpreter, so that every needed node's slot holds its value. */
  interpret(): void {
    interpreter()(this.code, this.argA, this.argB, this.argC, this.slots, this.firstOp, this.code.length);
  }

  private adaptiveRun(): void {
    this.calls++;
    if (this.candidate === undefined && this.calls >= TIER_UP_AFTER) this.candidate = this.generate();
    const start = process.hrtime.bigint();
    const tryCandidate = this.candidate !== undefined && this.calls % PROBE_EVERY === 0;
    if (tryCandidate) (this.candidate as Straight)(this.slots);
    else this.interpret();
    const ns = Number(process.hrtime.bigint() - start);
    if (!tryCandidate) {
      this.interpretedNs = this.interpretedNs === 0 ? ns : 0.9 * this.interpretedNs + 0.1 * ns;
    } else if (ns < 0.9 * this.interpretedNs) {
      this.straight = this.candidate;
    }
  }

  /**
   * Straight-line code: one local per op, constants inlined as literals. Large graphs are cut into
   * functions of CHUNK_OPS ops, because V8 does not optimise one huge function; values crossing a
   * chunk boundary go through the slot array.
   */
  private generate(): Straight {
    const { ops } = elementwiseTable();
    const f32 = this.precision === "float32";
    const g = this.graph;
    const slotOf = this.slotOf;
    const opNodes: number[] = [];
    for (let id = 0; id < g.nodes.length; id++) if (slotOf[id] >= this.firstOp) opNodes.push(id);
    const chunkOf = new Int32Array(g.nodes.length).fill(-1);
    opNodes.forEach((id, i) => {
      chunkOf[id] = Math.floor(i / CHUNK_OPS);
    });
    const chunkCount = Math.max(1, Math.ceil(opNodes.length / CHUNK_OPS));
    const outputSet = new Set(Array.from(this.outputSlots));
    // A value must be stored to its slot if a later chunk or the caller reads it.
    const stored = new Uint8Array(g.nodes.length);
    for (const id of opNodes) {
      for (const a of g.nodes[id].args) if (chunkOf[a] >= 0 && chunkOf[a] !== chunkOf[id]) stored[a] = 1;
      if (outputSet.has(slotOf[id])) stored[id] = 1;
    }
    const byName = new Map(ops.map((d) => [d.name, d]));
    const chunks: Straight[] = [];
    for (let c = 0; c < chunkCount; c++) {
      const members = opNodes.slice(c * CHUNK_OPS, (c + 1) * CHUNK_OPS);
      const lines: string[] = [];
      const loaded = new Set<number>();
      const operand = (a: number): string => {
        const node = g.nodes[a];
        if (node.op === "const") return formatLiteral(f32 ? Math.fround(node.value as number) : (node.value as number));
        if (chunkOf[a] !== c && !loaded.has(a)) {
          loaded.add(a);
          lines.push(`const t${a} = v[${slotOf[a]}];`);
        }
        return `t${a}`;
      };
      for (const id of members) {
        const node = g.nodes[id];
        const def = byName.get(node.op);
        if (!def) throw new Error(`op ${node.op} has no scalar kernel`);
        const args = node.args.map(operand);
        lines.push(`const t${id} = ${kernelExpression(def, args, f32)};`);
      }
      for (const id of members) if (stored[id]) lines.push(`v[${slotOf[id]}] = t${id};`);
      chunks.push(new Function("H", `return function chunk${c}(v) {\n${lines.join("\n")}\n};`)(scalarKernels) as Straight);
    }
    if (chunks.length === 1) return chunks[0];
    const calls = chunks.map((_, i) => `c[${i}](v);`).join(" ");
    return new Function("c", `return function run(v) { ${calls} };`)(chunks) as Straight;
  }
}
