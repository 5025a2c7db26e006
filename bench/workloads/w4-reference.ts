import { ADD, COS, EXP, MUL, SIN, SUB, TANH, W4_INPUTS, W4_OPS, W4_SUMMED, type W4Dag } from "./w4.js";

/**
 * Hand-written stand-ins for W4, the figures of ../shared/workloads.md: a typed-array interpreter, and
 * generated straight-line JavaScript (one function, or chunks of ~500 nodes) for the value and for the
 * value and gradient, its reverse sweep written out as straight-line adjoint code.
 *
 * Every kernel works on `v`, all values (inputs in v[0..99], node i in v[100 + i]), and `g`, their
 * adjoints; the gradient is g[0..99]. By default a kernel computes all 10,000 nodes, as the workload
 * is defined; `live: true` computes only the nodes the output depends on (about 28% of them), which is
 * what our engine computes after it prunes the graph: the like-for-like comparison.
 */
export interface W4Kernel {
  readonly name: string;
  /** Fills v[100…] from the inputs in v[0..99]; returns the output. */
  value(v: Float64Array): number;
  /** Also fills g (the gradient is g[0..99]); returns the output. */
  valueAndGradient(v: Float64Array, g: Float64Array): number;
  /** Number of nodes it computes. */
  readonly nodes: number;
}

export interface KernelOptions {
  /** Only the nodes the output depends on. */
  readonly live?: boolean;
}

/** Per value index (inputs, then nodes): 1 where the output depends on it. */
export function liveValues(dag: W4Dag): Uint8Array {
  const total = dag.values.length;
  const live = new Uint8Array(total);
  live.fill(1, total - W4_SUMMED);
  for (let i = dag.op.length - 1; i >= 0; i--) {
    if (!live[W4_INPUTS + i]) continue;
    live[dag.a[i]] = 1;
    if (dag.b[i] >= 0) live[dag.b[i]] = 1;
  }
  return live;
}

/** The node indices a kernel computes, in order. */
export function nodeOrder(dag: W4Dag, live: boolean): Int32Array {
  if (!live) return Int32Array.from(dag.op, (_, i) => i);
  const keep = liveValues(dag);
  const order: number[] = [];
  for (let i = 0; i < dag.op.length; i++) if (keep[W4_INPUTS + i]) order.push(i);
  return Int32Array.from(order);
}

/** A typed-array interpreter: one switch per node forwards, one per node backwards. */
export function w4Interpreter(dag: W4Dag, options: KernelOptions = {}): W4Kernel {
  const order = nodeOrder(dag, options.live ?? false);
  const { op, a, b } = dag;
  const total = dag.values.length;
  const first = total - W4_SUMMED;
  const forward = (v: Float64Array): number => {
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      const x = v[a[i]];
      let r: number;
      switch (op[i]) {
        case ADD:
          r = x + v[b[i]];
          break;
        case SUB:
          r = x - v[b[i]];
          break;
        case MUL:
          r = x * v[b[i]];
          break;
        case SIN:
          r = Math.sin(x);
          break;
        case COS:
          r = Math.cos(x);
          break;
        case TANH:
          r = Math.tanh(x);
          break;
        default:
          r = Math.exp(x);
      }
      v[W4_INPUTS + i] = r;
    }
    let s = 0;
    for (let k = first; k < total; k++) s += v[k];
    return s;
  };
  return {
    name: `interpreter${options.live ? " (live nodes)" : ""}`,
    nodes: order.length,
    value: forward,
    valueAndGradient(v, g) {
      const f = forward(v);
      g.fill(0);
      g.fill(1, first);
      for (let k = order.length - 1; k >= 0; k--) {
        const i = order[k];
        const j = W4_INPUTS + i;
        const d = g[j];
        const x = a[i];
        switch (op[i]) {
          case ADD:
            g[x] += d;
            g[b[i]] += d;
            break;
          case SUB:
            g[x] += d;
            g[b[i]] -= d;
            break;
          case MUL:
            g[x] += d * v[b[i]];
            g[b[i]] += d * v[x];
            break;
          case SIN:
            g[x] += d * Math.cos(v[x]);
            break;
          case COS:
            g[x] -= d * Math.sin(v[x]);
            break;
          case TANH:
            g[x] += d * (1 - v[j] * v[j]);
            break;
          default:
            g[x] += d * v[j];
        }
      }
      return f;
    },
  };
}

export interface StraightLineOptions extends KernelOptions {
  /** Nodes per generated function; undefined: everything in one function. */
  readonly chunk?: number;
}

export interface StraightLineSource {
  /** Function bodies: `value(v)` and `valueAndGradient(v, g)` each call these in order. */
  readonly valueChunks: readonly string[];
  readonly gradientChunks: readonly string[];
  readonly functions: number;
}

const FORWARD: Record<number, (x: string, y: string) => string> = {
  [ADD]: (x, y) => `${x} + ${y}`,
  [SUB]: (x, y) => `${x} - ${y}`,
  [MUL]: (x, y) => `${x} * ${y}`,
  [SIN]: (x) => `Math.sin(${x})`,
  [COS]: (x) => `Math.cos(${x})`,
  [TANH]: (x) => `Math.tanh(${x})`,
  [EXP]: (x) => `Math.exp(${x})`,
};

/**
 * Generated straight-line code, as a code generator would write it: forwards, one `const` per node,
 * operands from locals within a function and from `v` across functions; backwards, per node in reverse,
 * `g[operand] += g[node] · ∂node/∂operand`.
 */
export function w4StraightLine(dag: W4Dag, options: StraightLineOptions = {}): W4Kernel & { source: StraightLineSource } {
  const order = nodeOrder(dag, options.live ?? false);
  const total = dag.values.length;
  const first = total - W4_SUMMED;
  const size = options.chunk ?? Math.max(order.length, 1);
  const chunks: Int32Array[] = [];
  for (let s = 0; s < order.length; s += size) chunks.push(order.subarray(s, s + size));
  const chunkOf = new Int32Array(total).fill(-1);
  chunks.forEach((members, c) => {
    for (const i of members) chunkOf[W4_INPUTS + i] = c;
  });
  const one = chunks.length === 1;
  // Value only: store what another function (or the final sum, in the chunked form) reads.
  const usedElsewhere = new Uint8Array(total);
  for (const i of order) {
    const c = chunkOf[W4_INPUTS + i];
    for (const x of [dag.a[i], dag.b[i]]) if (x >= W4_INPUTS && chunkOf[x] !== c) usedElsewhere[x] = 1;
  }
  if (!one) usedElsewhere.fill(1, first);
  const sum = (term: (k: number) => string) => Array.from({ length: W4_SUMMED }, (_, k) => term(first + k)).join(" + ");

  const forwardChunk = (members: Int32Array, storeAll: boolean): string[] => {
    const lines: string[] = [];
    const c = chunkOf[W4_INPUTS + members[0]];
    const loaded = new Set<number>();
    const operand = (x: number): string => {
      if (x >= W4_INPUTS && chunkOf[x] === c) return `t${x}`;
      if (!loaded.has(x)) {
        loaded.add(x);
        lines.push(`const t${x} = v[${x}];`);
      }
      return `t${x}`;
    };
    for (const i of members) {
      const j = W4_INPUTS + i;
      const x = operand(dag.a[i]);
      const y = dag.b[i] >= 0 ? operand(dag.b[i]) : "";
      lines.push(`const t${j} = ${FORWARD[dag.op[i]](x, y)};`);
    }
    for (const i of members) {
      const j = W4_INPUTS + i;
      if (storeAll || usedElsewhere[j]) lines.push(`v[${j}] = t${j};`);
    }
    return lines;
  };
  const reverseChunk = (members: Int32Array): string[] => {
    const lines: string[] = [];
    for (let k = members.length - 1; k >= 0; k--) {
      const i = members[k];
      const j = W4_INPUTS + i;
      const x = dag.a[i];
      const y = dag.b[i];
      lines.push(`const d${j} = g[${j}];`);
      switch (dag.op[i]) {
        case ADD:
          lines.push(`g[${x}] += d${j}; g[${y}] += d${j};`);
          break;
        case SUB:
          lines.push(`g[${x}] += d${j}; g[${y}] -= d${j};`);
          break;
        case MUL:
          lines.push(`g[${x}] += d${j} * v[${y}]; g[${y}] += d${j} * v[${x}];`);
          break;
        case SIN:
          lines.push(`g[${x}] += d${j} * Math.cos(v[${x}]);`);
          break;
        case COS:
          lines.push(`g[${x}] -= d${j} * Math.sin(v[${x}]);`);
          break;
        case TANH:
          lines.push(`g[${x}] += d${j} * (1 - v[${j}] * v[${j}]);`);
          break;
        default:
          lines.push(`g[${x}] += d${j} * v[${j}];`);
      }
    }
    return lines;
  };

  let valueChunks: string[];
  let gradientChunks: string[];
  let value: (v: Float64Array) => number;
  let valueAndGradient: (v: Float64Array, g: Float64Array) => number;
  const seed = `g.fill(0); g.fill(1, ${first});`;
  if (one) {
    const members = chunks[0] ?? new Int32Array(0);
    const inLocals = (k: number) => (chunkOf[k] >= 0 ? `t${k}` : `v[${k}]`);
    valueChunks = [[...forwardChunk(members, false), `return ${sum(inLocals)};`].join("\n")];
    gradientChunks = [
      [...forwardChunk(members, true), `const f = ${sum(inLocals)};`, seed, ...reverseChunk(members), "return f;"].join("\n"),
    ];
    value = new Function("v", valueChunks[0]) as typeof value;
    valueAndGradient = new Function("v", "g", gradientChunks[0]) as typeof valueAndGradient;
  } else {
    valueChunks = chunks.map((m) => forwardChunk(m, false).join("\n"));
    const forwardAll = chunks.map((m) => forwardChunk(m, true).join("\n"));
    const reverseAll = chunks.map((m) => reverseChunk(m).join("\n"));
    gradientChunks = [...forwardAll, ...reverseAll];
    const compile = (body: string, k: number, params: string) => new Function(`return function chunk${k}(${params}) {\n${body}\n};`)();
    const vf = valueChunks.map((body, k) => compile(body, k, "v"));
    const ff = forwardAll.map((body, k) => compile(body, k, "v"));
    const rf = reverseAll.map((body, k) => compile(body, k, "v, g"));
    const fromV = (k: number) => `v[${k}]`;
    value = new Function("c", `return function value(v) { ${vf.map((_, k) => `c[${k}](v);`).join(" ")} return ${sum(fromV)}; };`)(
      vf,
    ) as typeof value;
    const reverseCalls = rf.map((_, k) => `r[${rf.length - 1 - k}](v, g);`).join(" ");
    valueAndGradient = new Function(
      "c",
      "r",
      `return function valueAndGradient(v, g) { ${ff.map((_, k) => `c[${k}](v);`).join(" ")} const f = ${sum(fromV)}; ${seed} ${reverseCalls} return f; };`,
    )(ff, rf) as typeof valueAndGradient;
  }
  const functions = one ? 1 : chunks.length * 2 + 1;
  const what = one ? "one function" : `chunks of ${size}`;
  return {
    name: `straight-line, ${what}${options.live ? " (live nodes)" : ""}`,
    nodes: order.length,
    value,
    valueAndGradient,
    source: { valueChunks, gradientChunks, functions },
  };
}

/** A fresh value array holding the generated point. */
export function w4Values(dag: W4Dag): Float64Array {
  const v = new Float64Array(dag.values.length);
  v.set(dag.inputs);
  return v;
}

export { W4_OPS };
