import { CompiledFunction } from "../../src/engine/compiled-function.js";
import type { Prepared } from "../../src/engine/compiled-graph.js";
import { sparsePlan } from "../../src/engine/modes/index.js";
import { run } from "../../src/engine/run.js";
import { parseExpression } from "../../src/ir/expression.js";
import type { Graph } from "../../src/ir/graph.js";
import { type BenchConfig, scaled, verdict } from "../config.js";
import { type Contender, interleave, maxRelativeError } from "../harness.js";
import { type SectionResult, table } from "../report.js";
import { bratu, bratuDiagonal, bratuPoint } from "../workloads/bratu.js";
import { w2Point } from "../workloads/w2.js";

const N = 100_000;
const W2_EXPRESSION = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)";

/**
 * A mode's compiled program, taken from the function's cache after one evaluation built it (the
 * engine's prepared programs are keyed by mode, wrt and precision): timed alone, x bound in place,
 * as the W2 suite times ours, so both sides of each ratio pay the same (no decoding, no copies).
 */
function programOf(fn: CompiledFunction, x: Float64Array, request: Parameters<CompiledFunction["evaluate"]>[1], key: string): Prepared {
  fn.evaluate({ x: { shape: [x.length], data: x } }, request);
  return fn.prepare(key, "float64", () => {
    throw new Error(`no program ${key}`);
  });
}

function programContender(name: string, p: Prepared, x: Float64Array, note?: string): Contender {
  const x0 = x[0];
  const last = p.results[p.results.length - 1];
  return {
    name,
    note,
    run(calls) {
      let s = 0;
      for (let i = 0; i < calls; i++) {
        x[0] = x0 + (i & 15) * 1e-6;
        run(p.program, [x]);
        s += (p.program.read(last) as Float64Array)[0];
      }
      return s;
    },
  };
}

/** Pattern detection and colouring from scratch: a fresh function each call, as a new function gets. */
function planContender(name: string, graph: Graph, kind: "jacobian" | "hessian"): Contender {
  return {
    name,
    calls: 1,
    run() {
      const fn = new CompiledFunction(graph, "bench");
      return sparsePlan(fn, kind, fn.wrtOf(undefined), undefined).coloring.count;
    },
  };
}

/** The Bratu Jacobian's data against the closed form (CSR rows in order: left, diagonal, right). */
function bratuCheck(p: Prepared, x: Float64Array): string {
  run(p.program, [x]);
  const data = p.program.read(p.results[p.results.length - 1]) as Float64Array;
  const diag = bratuDiagonal(x);
  // Row 0 holds columns 0 and 1, row i > 0 columns i − 1, i (, i + 1): the diagonal is entry 3i.
  const got = Float64Array.from(diag, (_, i) => data[3 * i]);
  return `${maxRelativeError(got, diag) <= 1e-12 ? "ok" : "MISMATCH"} diagonal against the closed form`;
}

export async function benchSparse(config: BenchConfig): Promise<SectionResult> {
  const w2 = new CompiledFunction(parseExpression(W2_EXPRESSION, [{ name: "x", shape: [N] }]));
  const xw = w2Point(N);
  const br = new CompiledFunction(bratu(N));
  const xb = bratuPoint(N);
  const names = {
    vg: "W2 value+gradient",
    v: "W2 value",
    h: "W2 sparse Hessian (star colouring)",
    res: "Bratu residual",
    j: "Bratu sparse Jacobian (column colouring)",
    hp: "W2 Hessian pattern + star colouring, once",
    jp: "Bratu Jacobian pattern + column colouring, once",
  };
  const hessian = programOf(w2, xw.slice(), { mode: "hessian", sparse: true }, "sparse-hessian|x");
  const jac = programOf(br, xb.slice(), { mode: "jacobian", sparse: true }, "sparse-jacobian|forward|x");
  const contenders: Contender[] = [
    programContender(names.vg, programOf(w2, xw.slice(), { mode: "reverse" }, "grad|f|x"), xw.slice()),
    programContender(names.v, programOf(w2, xw.slice(), { mode: "value" }, "value"), xw.slice()),
    programContender(names.h, hessian, xw.slice(), `${sparsePlan(w2, "hessian", w2.wrtOf(undefined), undefined).coloring.count} colours`),
    programContender(names.res, programOf(br, xb.slice(), { mode: "value" }, "value"), xb.slice()),
    programContender(names.j, jac, xb.slice(), bratuCheck(jac, xb.slice())),
    planContender(names.hp, w2.graph, "hessian"),
    planContender(names.jp, br.graph, "jacobian"),
  ];
  const m = await interleave(contenders, {
    rounds: scaled(config, 12, 4),
    targetMs: scaled(config, 20, 10),
    warmupMs: scaled(config, 2000, 500),
    maxMs: scaled(config, 40_000, 10_000),
  });
  const hRatio = m.ratio(names.h, names.vg).median;
  const jRatio = m.ratio(names.j, names.res).median;
  const pRatio = m.ratio(names.hp, names.v).median;
  const bpRatio = m.ratio(names.jp, names.res).median;
  return {
    id: "sparse",
    title: "Sparse derivatives at n = 100,000: W2's Hessian and the Bratu Jacobian",
    tables: [table(`n = ${N.toLocaleString("en")}`, m, names.vg)],
    summary: {
      "W2 sparse Hessian ÷ value+gradient": hRatio,
      "W2 sparse Hessian ÷ value+gradient, target ≤ 15": verdict(config, hRatio <= 15),
      "Bratu sparse Jacobian ÷ residual": jRatio,
      "Bratu sparse Jacobian ÷ residual, target ≤ 10": verdict(config, jRatio <= 10),
      "W2 pattern + colouring ÷ value": pRatio,
      "W2 pattern + colouring ÷ value, target ≤ 50": verdict(config, pRatio <= 50),
      "Bratu pattern + colouring ÷ residual": bpRatio,
    },
    notes: [
      "programs timed alone (x bound, results read in place), as the W2 suite times ours; the sparse programs write each block's CSR data directly.",
      "pattern + colouring: a fresh function per call (Hessian pattern = Jacobian pattern of the gradient graph, which it builds), star or column colouring, and the decompression index map.",
    ],
  };
}
