/** Small dense kernels of the compact L-BFGS algebra, on row-major squares with a stride. */

/** Moves the trailing size × size block of a stride-m square up and left by one (dropping row and column 0). */
export function shiftUpLeft(a: Float64Array, m: number, size: number): void {
  // Element by element: copyWithin's call overhead, 3k times an iteration, cost more than the copying.
  for (let i = 0; i < size; i++) {
    const to = i * m;
    const from = (i + 1) * m + 1;
    for (let j = 0; j < size; j++) a[to + j] = a[from + j];
  }
}

/** In-place lower Cholesky factor of the symmetric positive definite k × k matrix held in a's lower triangle (stride m). */
export function cholesky(a: Float64Array, k: number, m: number): void {
  for (let c = 0; c < k; c++) {
    let d = a[c * m + c];
    for (let l = 0; l < c; l++) d -= a[c * m + l] * a[c * m + l];
    d = Math.sqrt(d);
    a[c * m + c] = d;
    for (let r = c + 1; r < k; r++) {
      let t = a[r * m + c];
      for (let l = 0; l < c; l++) t -= a[r * m + l] * a[c * m + l];
      a[r * m + c] = t / d;
    }
  }
}

/** Solves A u = b in place (A: n × n row-major, overwritten; b becomes u) by Gaussian elimination with partial pivoting. */
export function solveInPlace(a: Float64Array, b: Float64Array, n: number): void {
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    if (p !== c) {
      for (let t = c; t < n; t++) {
        const x = a[c * n + t];
        a[c * n + t] = a[p * n + t];
        a[p * n + t] = x;
      }
      const x = b[c];
      b[c] = b[p];
      b[p] = x;
    }
    const d = a[c * n + c];
    for (let r = c + 1; r < n; r++) {
      const f = a[r * n + c] / d;
      if (f === 0) continue;
      for (let t = c + 1; t < n; t++) a[r * n + t] -= f * a[c * n + t];
      b[r] -= f * b[c];
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    let t = b[c];
    for (let l = c + 1; l < n; l++) t -= a[c * n + l] * b[l];
    b[c] = t / a[c * n + c];
  }
}
