import { BudgetExceeded } from "../../ir/budget.js";
import type { OperandMap } from "../../ops/types.js";
import type { SparsityPattern } from "./csr.js";

/**
 * The explicit representation: one sorted index set per element, for the nodes whose op breaks the
 * band structure (reductions, matmul, windows, data-dependent gathers) and everything after them.
 */

export type Part = { readonly entry: OperandMap | "same" | "all"; readonly operand: SparsityPattern };

/** Unions of index sets, row by row, in buffers reused across nodes. */
export class Scratch {
  private readonly stamp: Int32Array;
  private buffer = new Int32Array(1024);

  constructor(
    readonly cols: number,
    private readonly maxEntries: number,
  ) {
    this.stamp = new Int32Array(cols);
  }

  combine(size: number, parts: readonly Part[]): SparsityPattern {
    this.stamp.fill(-1);
    const whole = parts.map((p) => (p.entry === "all" ? unionAll(p.operand) : undefined));
    const indptr = new Int32Array(size + 1);
    let at = 0;
    for (let r = 0; r < size; r++) {
      const start = at;
      for (let k = 0; k < parts.length; k++) {
        const { entry, operand } = parts[k];
        if (entry === "all") at = this.addRow(r, whole[k] as Int32Array, 0, (whole[k] as Int32Array).length, at);
        else if (entry === "same") at = this.addRow(r, operand.indices, operand.indptr[r], operand.indptr[r + 1], at);
        else at = this.addMapped(r, entry, operand, at);
      }
      if (at - start > 1) sortRow(this.buffer, start, at);
      indptr[r + 1] = at;
    }
    return { rows: size, cols: this.cols, indptr, indices: this.buffer.slice(0, at) };
  }

  private addMapped(r: number, map: OperandMap, operand: SparsityPattern, at: number): number {
    const row = map.rowOf ? map.rowOf[r] : r;
    if (map.indptr === undefined) {
      const e = map.indices[row];
      return e < 0 ? at : this.addRow(r, operand.indices, operand.indptr[e], operand.indptr[e + 1], at);
    }
    let end = at;
    for (let p = map.indptr[row]; p < map.indptr[row + 1]; p++) {
      const e = map.indices[p];
      end = this.addRow(r, operand.indices, operand.indptr[e], operand.indptr[e + 1], end);
    }
    return end;
  }

  private addRow(r: number, source: Int32Array, from: number, to: number, at: number): number {
    if (at + (to - from) > this.buffer.length) this.grow(at + (to - from));
    let end = at;
    for (let p = from; p < to; p++) {
      const c = source[p];
      if (this.stamp[c] === r) continue;
      this.stamp[c] = r;
      this.buffer[end++] = c;
    }
    return end;
  }

  private grow(needed: number): void {
    if (needed > this.maxEntries) {
      throw new BudgetExceeded(
        `the sparsity pattern of one node would hold more than ${this.maxEntries} index entries; the derivative is too dense for a sparse answer`,
        false,
      );
    }
    const next = new Int32Array(Math.min(Math.max(needed, this.buffer.length * 2), Math.max(needed, this.maxEntries)));
    next.set(this.buffer);
    this.buffer = next;
  }
}

/**
 * Sorts one row in place: insertion sort for the short rows that sparse patterns have (a typed
 * array's sort per row would cost more than the rest of the propagation), the built-in one otherwise.
 */
function sortRow(a: Int32Array, from: number, to: number): void {
  if (to - from > 32) {
    a.subarray(from, to).sort();
    return;
  }
  for (let i = from + 1; i < to; i++) {
    const v = a[i];
    let j = i - 1;
    while (j >= from && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
}

function unionAll(p: SparsityPattern): Int32Array {
  return Int32Array.from(new Set(p.indices)).sort();
}
