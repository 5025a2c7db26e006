import { cholesky, shiftUpLeft } from "./dense.js";

/**
 * The compact limited-memory BFGS matrix of Byrd, Nocedal and Schnabel (1994), as L-BFGS-B uses it:
 * B = θI − W M Wᵀ with W = [Y, θS] (n × 2k) and M = [[−D, Lᵀ], [L, θSᵀS]]⁻¹ (2k × 2k), where D is the
 * diagonal and L the strictly lower triangle of SᵀY.
 *
 * Everything lives in storage allocated once: S and Y are circular (a new pair overwrites the oldest
 * slot, no copying), SᵀS, SᵀY and YᵀY are kept oldest-first in `capacity`-strided squares and gain
 * one row and column per pair. M is never formed: like the Fortran code's formt it is applied through
 * the Cholesky factor J Jᵀ = θSᵀS + L D⁻¹ Lᵀ, refactored in place after each update (O(k³), k ≤ capacity).
 */
export class LbfgsMemory {
  theta = 1;
  size = 0;
  /** The slot of the oldest pair; pair j (oldest first) lives at slot (head + j) mod capacity. */
  private head = 0;
  protected readonly s: Float64Array;
  protected readonly y: Float64Array;
  /** Oldest-first inner products, row-major with stride `capacity`: ss[i][j] = s_iᵀs_j, sy[i][j] = s_iᵀy_j, yy[i][j] = y_iᵀy_j. */
  private readonly ss: Float64Array;
  protected readonly sy: Float64Array;
  protected readonly yy: Float64Array;
  /** The lower Cholesky factor J of θSᵀS + L D⁻¹ Lᵀ, stride `capacity`. */
  private readonly j: Float64Array;
  private readonly rhs: Float64Array;

  constructor(
    protected readonly capacity: number,
    protected readonly n: number,
  ) {
    this.s = new Float64Array(capacity * n);
    this.y = new Float64Array(capacity * n);
    this.ss = new Float64Array(capacity * capacity);
    this.sy = new Float64Array(capacity * capacity);
    this.yy = new Float64Array(capacity * capacity);
    this.j = new Float64Array(capacity * capacity);
    this.rhs = new Float64Array(capacity);
  }

  reset(): void {
    this.size = 0;
    this.head = 0;
    this.theta = 1;
  }

  /** Offset of pair j (oldest first) in S and Y. */
  protected offset(j: number): number {
    const slot = this.head + j;
    return (slot < this.capacity ? slot : slot - this.capacity) * this.n;
  }

  /** Adds a correction pair (copied), dropping the oldest once full; the caller has checked sᵀy > 0. */
  push(s: Float64Array, y: Float64Array): void {
    this.settle();
    const m = this.capacity;
    if (this.size === m) {
      this.head = this.head + 1 === m ? 0 : this.head + 1;
      this.size--;
      shiftUpLeft(this.ss, m, this.size);
      shiftUpLeft(this.sy, m, this.size);
      shiftUpLeft(this.yy, m, this.size);
    }
    const k = this.size;
    const at = this.offset(k);
    this.s.set(s, at);
    this.y.set(y, at);
    this.size++;
    this.pairProducts(k, s, y);
    this.theta = this.yy[k * m + k] / this.sy[k * m + k];
    this.refactor();
  }

  /** Completes any inner products left pending before the pairs move (UnboundedMemory defers some). */
  protected settle(): void {}

  protected refactor(): void {
    this.factor();
  }

  /** Row and column k of SᵀS, SᵀY and YᵀY against every stored pair (pair k is s, y). */
  protected pairProducts(k: number, s: Float64Array, y: Float64Array): void {
    const { n, capacity: m, s: S, y: Y } = this;
    for (let i = 0; i <= k; i++) {
      const o = this.offset(i);
      let si = 0;
      let syik = 0;
      let skyi = 0;
      let yi = 0;
      for (let t = 0; t < n; t++) {
        const a = S[o + t];
        const b = Y[o + t];
        si += a * s[t];
        syik += a * y[t];
        skyi += s[t] * b;
        yi += b * y[t];
      }
      this.ss[k * m + i] = si;
      this.ss[i * m + k] = si;
      this.sy[k * m + i] = skyi;
      this.sy[i * m + k] = syik;
      this.yy[k * m + i] = yi;
      this.yy[i * m + k] = yi;
    }
  }

  /** J Jᵀ = θSᵀS + L D⁻¹ Lᵀ, the Fortran code's formt: positive definite whenever every sᵀy > 0. */
  private factor(): void {
    const k = this.size;
    const m = this.capacity;
    const { ss, sy, j } = this;
    for (let a = 0; a < k; a++) {
      for (let b = 0; b <= a; b++) {
        let t = this.theta * ss[a * m + b];
        for (let l = 0; l < b; l++) t += (sy[a * m + l] * sy[b * m + l]) / sy[l * m + l];
        j[a * m + b] = t;
      }
    }
    cholesky(j, k, m);
  }

  /** Row i of W: [y_0[i] … y_{k−1}[i], θ s_0[i] … θ s_{k−1}[i]]. */
  row(i: number, out: Float64Array): void {
    const k = this.size;
    for (let c = 0; c < k; c++) {
      const o = this.offset(c) + i;
      out[c] = this.y[o];
      out[k + c] = this.theta * this.s[o];
    }
  }

  /** Wᵀv. */
  wtv(v: Float64Array, out: Float64Array): void {
    const k = this.size;
    const n = this.n;
    const S = this.s;
    const Y = this.y;
    for (let c = 0; c < k; c++) {
      const o = this.offset(c);
      let a = 0;
      let b = 0;
      for (let i = 0; i < n; i++) {
        a += Y[o + i] * v[i];
        b += S[o + i] * v[i];
      }
      out[c] = a;
      out[k + c] = this.theta * b;
    }
  }

  /** out += scale · W v (v of length 2k). */
  addWv(v: Float64Array, scale: number, out: Float64Array): void {
    const k = this.size;
    const n = this.n;
    const S = this.s;
    const Y = this.y;
    // Two pairs a pass, added in the order one pair a pass adds them (the same rounding), with half
    // the loads and stores of out.
    let c = 0;
    for (; c + 1 < k; c += 2) {
      const a = scale * v[c];
      const b = scale * this.theta * v[k + c];
      const a2 = scale * v[c + 1];
      const b2 = scale * this.theta * v[k + c + 1];
      const o = this.offset(c);
      const o2 = this.offset(c + 1);
      for (let i = 0; i < n; i++) out[i] = out[i] + (a * Y[o + i] + b * S[o + i]) + (a2 * Y[o2 + i] + b2 * S[o2 + i]);
    }
    if (c < k) {
      const a = scale * v[c];
      const b = scale * this.theta * v[k + c];
      const o = this.offset(c);
      for (let i = 0; i < n; i++) out[i] += a * Y[o + i] + b * S[o + i];
    }
  }

  /**
   * out = M v (out must not alias v), through the factorisation of M⁻¹ the Fortran bmv uses:
   * M⁻¹ = [[D^½, 0], [−L D^−½, J]] · [[−D^½, D^−½ Lᵀ], [0, Jᵀ]].
   */
  mv(v: Float64Array, out: Float64Array): void {
    const k = this.size;
    const m = this.capacity;
    const { sy, j, rhs } = this;
    for (let a = 0; a < k; a++) {
      let t = v[k + a];
      for (let l = 0; l < a; l++) t += (sy[a * m + l] * v[l]) / sy[l * m + l];
      rhs[a] = t;
    }
    // J q = rhs, then Jᵀ p₂ = q: p₂ lands in out[k…2k).
    for (let a = 0; a < k; a++) {
      let t = rhs[a];
      for (let l = 0; l < a; l++) t -= j[a * m + l] * rhs[l];
      rhs[a] = t / j[a * m + a];
    }
    for (let a = k - 1; a >= 0; a--) {
      let t = rhs[a];
      for (let l = a + 1; l < k; l++) t -= j[l * m + a] * out[k + l];
      out[k + a] = t / j[a * m + a];
    }
    // p₁ = D⁻¹(Lᵀ p₂ − v₁).
    for (let a = 0; a < k; a++) {
      let t = -v[a];
      for (let l = a + 1; l < k; l++) t += sy[l * m + a] * out[k + l];
      out[a] = t / sy[a * m + a];
    }
  }

  /** vᵀ M v, with `scratch` (length ≥ 2k) for M v. */
  quadraticForm(v: Float64Array, scratch: Float64Array): number {
    this.mv(v, scratch);
    let s = 0;
    for (let i = 0; i < 2 * this.size; i++) s += v[i] * scratch[i];
    return s;
  }

  /** M⁻¹ = [[−D, Lᵀ], [L, θSᵀS]] into out, row-major 2k × 2k. */
  middleInverse(out: Float64Array): void {
    const k = this.size;
    const m = this.capacity;
    const w = 2 * k;
    out.fill(0, 0, w * w);
    for (let a = 0; a < k; a++) {
      out[a * w + a] = -this.sy[a * m + a];
      for (let b = 0; b < k; b++) {
        if (a > b) {
          out[(k + a) * w + b] = this.sy[a * m + b];
          out[b * w + k + a] = this.sy[a * m + b];
        }
        out[(k + a) * w + k + b] = this.theta * this.ss[a * m + b];
      }
    }
  }

  /** WᵀW, 2k × 2k, from the stored inner products: the subspace step's system when every variable is free. */
  gram(out: Float64Array): void {
    const k = this.size;
    const m = this.capacity;
    const w = 2 * k;
    const t = this.theta;
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) {
        out[a * w + b] = this.yy[a * m + b];
        out[a * w + k + b] = t * this.sy[b * m + a];
        out[(k + a) * w + b] = t * this.sy[a * m + b];
        out[(k + a) * w + k + b] = t * t * this.ss[a * m + b];
      }
    }
  }
}
