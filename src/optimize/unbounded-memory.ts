import { LbfgsMemory } from "./memory.js";

/**
 * The memory of a problem without bounds. There L-BFGS-B's Cauchy point and its subspace step over
 * every variable land on x − B⁻¹g whatever the Cauchy point was, so all the iteration needs is
 * −B⁻¹g (newtonStep), which reads only SᵀY's upper triangle and YᵀY: SᵀS, SᵀY's lower triangle and
 * the Cholesky factor J are never formed, and each new pair's products with the older pairs are
 * computed in newtonStep's pass over W rather than in a pass of their own.
 */
export class UnboundedMemory extends LbfgsMemory {
  /** The newest pair's products with the older pairs are not computed yet (pairProducts). */
  private pending = false;

  override reset(): void {
    this.pending = false;
    super.reset();
  }

  protected override settle(): void {
    if (this.pending) this.crossProducts(this.size - 1);
  }

  /** J is not needed: nothing here applies M through it. */
  protected override refactor(): void {}

  /**
   * s_kᵀy_k and y_kᵀy_k now (θ needs them); the products of y_k with the older pairs, the
   * rest of what newtonStep reads, are left pending for its pass over W, which loads every stored
   * pair anyway (one pass over the memory an iteration instead of two).
   */
  protected override pairProducts(k: number, s: Float64Array, y: Float64Array): void {
    const m = this.capacity;
    let sy = 0;
    let yy = 0;
    for (let t = 0; t < this.n; t++) {
      sy += s[t] * y[t];
      yy += y[t] * y[t];
    }
    this.sy[k * m + k] = sy;
    this.yy[k * m + k] = yy;
    this.pending = k > 0;
  }

  /** The pending products s_iᵀy_k and y_iᵀy_k (i < k) on their own, when no newtonStep came between two pushes. */
  private crossProducts(k: number): void {
    const { n, capacity: m, s: S, y: Y } = this;
    const ok = this.offset(k);
    for (let i = 0; i < k; i++) {
      const o = this.offset(i);
      let sy = 0;
      let yy = 0;
      for (let t = 0; t < n; t++) {
        const b = Y[ok + t];
        sy += S[o + t] * b;
        yy += Y[o + t] * b;
      }
      this.sy[i * m + k] = sy;
      this.yy[k * m + i] = yy;
      this.yy[i * m + k] = yy;
    }
    this.pending = false;
  }

  /**
   * q = Wᵀg, completing the newest pair's pending products in the same pass (the same sums, in the
   * same order). The newest pair k rides along as one more pair: its products with y_k are its own
   * s_kᵀy_k and y_kᵀy_k, recomputed to the same bits.
   */
  private wtvWithPending(g: Float64Array, q: Float64Array): void {
    if (!this.pending) {
      this.wtv(g, q);
      return;
    }
    const k = this.size - 1;
    for (let i = 0; i <= k; i += 2) this.fusedPairs(i, Math.min(i + 1, k), k, g, q);
    this.pending = false;
  }

  /**
   * Pairs i and j (j = i when one is left) against y_k and g: eight independent sums, each added in
   * index order (the same rounding as one dot product at a time), keep the adder busy, and y_k and g
   * are loaded once for both pairs. Integer arguments only: a call that V8 does not inline boxes
   * number arguments, an allocation per call.
   */
  private fusedPairs(i: number, j: number, k: number, g: Float64Array, q: Float64Array): void {
    const { n, capacity: m, s: S, y: Y, sy: SY, yy: YY, size, theta } = this;
    const ok = this.offset(k);
    const o = this.offset(i);
    const o2 = this.offset(j);
    let sy = 0;
    let yy = 0;
    let yg = 0;
    let sg = 0;
    let sy2 = 0;
    let yy2 = 0;
    let yg2 = 0;
    let sg2 = 0;
    for (let t = 0; t < n; t++) {
      const yk = Y[ok + t];
      const gt = g[t];
      const a = S[o + t];
      const b = Y[o + t];
      const a2 = S[o2 + t];
      const b2 = Y[o2 + t];
      sy += a * yk;
      yy += b * yk;
      yg += b * gt;
      sg += a * gt;
      sy2 += a2 * yk;
      yy2 += b2 * yk;
      yg2 += b2 * gt;
      sg2 += a2 * gt;
    }
    SY[i * m + k] = sy;
    YY[k * m + i] = yy;
    YY[i * m + k] = yy;
    q[i] = yg;
    q[size + i] = theta * sg;
    SY[j * m + k] = sy2;
    YY[k * m + j] = yy2;
    YY[j * m + k] = yy2;
    q[j] = yg2;
    q[size + j] = theta * sg2;
  }

  /**
   * out = −B⁻¹g, the quasi-Newton step: the direction the bounded path (cauchyPoint, subspaceMinimum)
   * computes when nothing is bounded, in one pass for Wᵀg and one for W·u instead of five, and no
   * 2k × 2k solve: with all variables free, M⁻¹ − WᵀW/θ = [[−D − YᵀY/θ, −Rᵀ], [−R, 0]] (R the upper
   * triangle of SᵀY), whose inverse needs two triangular solves (Byrd, Nocedal and Schnabel 1994, §4).
   * `q` and `u` are scratch of length ≥ 2k.
   */
  newtonStep(g: Float64Array, out: Float64Array, q: Float64Array, u: Float64Array): void {
    const k = this.size;
    const m = this.capacity;
    this.wtvWithPending(g, q);
    const { sy, yy, theta } = this;
    // R u₁ = −q₂ (back substitution), then Rᵀ u₂ = −(q₁ + (D + YᵀY/θ) u₁) (forward).
    for (let a = k - 1; a >= 0; a--) {
      let t = -q[k + a];
      for (let b = a + 1; b < k; b++) t -= sy[a * m + b] * u[b];
      u[a] = t / sy[a * m + a];
    }
    for (let a = 0; a < k; a++) {
      let t = q[a] + sy[a * m + a] * u[a];
      let c = 0;
      for (let b = 0; b < k; b++) c += yy[a * m + b] * u[b];
      t += c / theta;
      for (let b = 0; b < a; b++) t += sy[b * m + a] * u[k + b];
      u[k + a] = -t / sy[a * m + a];
    }
    // out = −g/θ − W u / θ², with W = [Y, θS].
    const inv = 1 / theta;
    for (let i = 0; i < this.n; i++) out[i] = -g[i] * inv;
    this.addWv(u, -inv * inv, out);
  }
}
