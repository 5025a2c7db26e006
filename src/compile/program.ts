import type { Budget } from "../ir/budget.js";
import type { Graph } from "../ir/graph.js";
import type { TensorData } from "../ops/types.js";
import { type Precision, ScalarProgram } from "./scalar-program.js";
import { TensorProgram } from "./tensor-program.js";

/**
 * A compiled graph, whichever kind: all-scalar graphs get the scalar fast path (value slots,
 * straight-line code), anything with a tensor gets the tensor program (arena, fused loops, kernels).
 */
export interface Program {
  readonly precision: Precision;
  /** Writes input k (in the graph's input order): a number, or row-major elements. */
  setInput(k: number, value: number | ArrayLike<number>): void;
  /**
   * Like setInput, but a typed array of the program's element type and the input's length is read
   * in place, without a copy; it must not change until the run that reads it is over.
   */
  useInput(k: number, value: number | ArrayLike<number>): void;
  /**
   * Makes the runs until releaseOutputs write result `node` straight into `target`, where the program
   * stores the result on its own in memory of the target's type and length; false (nothing bound, the
   * caller copies the result out after the run) otherwise.
   */
  useOutput(node: number, target: TensorData): boolean;
  /** Undoes every useOutput: later runs no longer touch the targets. */
  releaseOutputs(): void;
  run(): void;
  /** A node's value after `run`: a number for scalars, row-major elements for tensors. */
  read(node: number): number | TensorData;
}

export interface CompileOptions {
  readonly precision?: Precision;
  /** Keep every node readable (traces, diagnosis); slower, and never the hot path. */
  readonly keepAll?: boolean;
  /** Refuses, before allocating, a program whose tensors or loops exceed it. */
  readonly budget?: Budget;
}

class ScalarAdapter implements Program {
  constructor(readonly program: ScalarProgram) {}
  get precision(): Precision {
    return this.program.precision;
  }
  setInput(k: number, value: number | ArrayLike<number>): void {
    this.program.slots[this.program.inputSlots[k]] = typeof value === "number" ? value : value[0];
  }
  useInput(k: number, value: number | ArrayLike<number>): void {
    this.setInput(k, value);
  }
  useOutput(): boolean {
    return false;
  }
  releaseOutputs(): void {}
  run(): void {
    this.program.run();
  }
  read(node: number): number {
    return this.program.slots[this.program.slotOf[node]];
  }
}

class TensorAdapter implements Program {
  constructor(readonly program: TensorProgram) {}
  get precision(): Precision {
    return this.program.precision;
  }
  setInput(k: number, value: number | ArrayLike<number>): void {
    this.program.setInput(k, value);
  }
  useInput(k: number, value: number | ArrayLike<number>): void {
    const own = this.program.inputBuffers[k];
    if (ArrayBuffer.isView(value) && value.constructor === own.constructor && (value as TensorData).length === own.length) {
      this.program.bindInput(k, value as TensorData);
    } else this.program.setInput(k, value);
  }
  useOutput(node: number, target: TensorData): boolean {
    return this.program.tryBindOutput(node, target);
  }
  releaseOutputs(): void {
    this.program.releaseOutputs();
  }
  run(): void {
    this.program.run();
  }
  read(node: number): number | TensorData {
    return this.program.read(node);
  }
}

export function compileProgram(graph: Graph, results: readonly number[], options: CompileOptions = {}): Program {
  const precision = options.precision ?? "float64";
  const keep = options.keepAll ? graph.nodes.map((_, id) => id) : results;
  if (graph.isScalar) {
    return new ScalarAdapter(new ScalarProgram(graph, keep, { precision, tier: options.keepAll ? "interpreter" : undefined }));
  }
  return new TensorAdapter(new TensorProgram(graph, results, { precision, keep, budget: options.budget }));
}
