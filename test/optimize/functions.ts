/** Test objectives with closed-form gradients and Hessian-vector products. */

/** The extended (chained) Rosenbrock function, as scipy.optimize.rosen (the one the workers warm up on). */
export { rosenbrock as rosen } from "../../src/optimize/warm.js";

/** ∇²rosen(x)·v, as scipy.optimize.rosen_hess_prod. */
export function rosenHvp(x: Float64Array, v: Float64Array, out: Float64Array): void {
  out.fill(0);
  for (let i = 0; i < x.length - 1; i++) {
    const hii = 1200 * x[i] * x[i] - 400 * x[i + 1] + 2;
    const hij = -400 * x[i];
    out[i] += hii * v[i] + hij * v[i + 1];
    out[i + 1] += hij * v[i] + 200 * v[i + 1];
  }
}

/** (−1.2, 1, −1.2, 1, …), the classical start. */
export function rosenStart(n: number): Float64Array {
  return new Float64Array(n).map((_, i) => (i % 2 === 0 ? -1.2 : 1));
}

/** 0.5 xᵀAx − bᵀx for a dense symmetric A (row-major). */
export function quadratic(a: Float64Array, b: Float64Array) {
  const n = b.length;
  const value = (x: Float64Array, g: Float64Array): number => {
    let f = 0;
    for (let i = 0; i < n; i++) {
      let ax = 0;
      for (let j = 0; j < n; j++) ax += a[i * n + j] * x[j];
      g[i] = ax - b[i];
      f += 0.5 * x[i] * ax - b[i] * x[i];
    }
    return f;
  };
  const hvp = (_x: Float64Array, v: Float64Array, out: Float64Array): void => {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[i * n + j] * v[j];
      out[i] = s;
    }
  };
  return { value, hvp };
}

export function maxDistance(x: Float64Array, target: ArrayLike<number> | number): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - (typeof target === "number" ? target : target[i])));
  return m;
}

/** Beale's function, minimum 0 at (3, 0.5). */
export function beale(x: Float64Array, g: Float64Array): number {
  const [a, b] = x;
  const u = [1.5 - a + a * b, 2.25 - a + a * b * b, 2.625 - a + a * b ** 3];
  g[0] = 2 * (u[0] * (b - 1) + u[1] * (b * b - 1) + u[2] * (b ** 3 - 1));
  g[1] = 2 * (u[0] * a + u[1] * 2 * a * b + u[2] * 3 * a * b * b);
  return u[0] ** 2 + u[1] ** 2 + u[2] ** 2;
}

export function bealeHvp(x: Float64Array, v: Float64Array, out: Float64Array): void {
  const [a, b] = x;
  const u = [1.5 - a + a * b, 2.25 - a + a * b * b, 2.625 - a + a * b ** 3];
  const du = [
    [b - 1, a],
    [b * b - 1, 2 * a * b],
    [b ** 3 - 1, 3 * a * b * b],
  ];
  const d2 = [
    [0, 1, 0],
    [0, 2 * b, 2 * a],
    [0, 3 * b * b, 6 * a * b],
  ];
  let h00 = 0;
  let h01 = 0;
  let h11 = 0;
  for (let i = 0; i < 3; i++) {
    h00 += 2 * (du[i][0] * du[i][0] + u[i] * d2[i][0]);
    h01 += 2 * (du[i][0] * du[i][1] + u[i] * d2[i][1]);
    h11 += 2 * (du[i][1] * du[i][1] + u[i] * d2[i][2]);
  }
  out[0] = h00 * v[0] + h01 * v[1];
  out[1] = h01 * v[0] + h11 * v[1];
}

/** The extended Powell singular function (n a multiple of 4), minimum 0 at 0 with a singular Hessian there. */
export function powell(x: Float64Array, g: Float64Array): number {
  let f = 0;
  for (let i = 0; i < x.length; i += 4) {
    const t1 = x[i] + 10 * x[i + 1];
    const t2 = x[i + 2] - x[i + 3];
    const t3 = x[i + 1] - 2 * x[i + 2];
    const t4 = x[i] - x[i + 3];
    f += t1 * t1 + 5 * t2 * t2 + t3 ** 4 + 10 * t4 ** 4;
    g[i] = 2 * t1 + 40 * t4 ** 3;
    g[i + 1] = 20 * t1 + 4 * t3 ** 3;
    g[i + 2] = 10 * t2 - 8 * t3 ** 3;
    g[i + 3] = -10 * t2 - 40 * t4 ** 3;
  }
  return f;
}

export function powellHvp(x: Float64Array, v: Float64Array, out: Float64Array): void {
  for (let i = 0; i < x.length; i += 4) {
    const p = 12 * (x[i + 1] - 2 * x[i + 2]) ** 2;
    const q = 120 * (x[i] - x[i + 3]) ** 2;
    const [va, vb, vc, vd] = [v[i], v[i + 1], v[i + 2], v[i + 3]];
    out[i] = (2 + q) * va + 20 * vb - q * vd;
    out[i + 1] = 20 * va + (200 + p) * vb - 2 * p * vc;
    out[i + 2] = -2 * p * vb + (10 + 4 * p) * vc - 10 * vd;
    out[i + 3] = -q * va - 10 * vc + (10 + q) * vd;
  }
}

/** (3, −1, 0, 1) repeated, the classical start. */
export function powellStart(n: number): Float64Array {
  return new Float64Array(n).map((_, i) => [3, -1, 0, 1][i % 4]);
}

/** The fixture's bound-constrained quadratic: A = tridiag(−1, 4, −1), b_i = 8 − 16 i / (n − 1). */
export function boxQuadratic(n: number) {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    a[i * n + i] = 4;
    if (i > 0) a[i * n + i - 1] = -1;
    if (i < n - 1) a[i * n + i + 1] = -1;
  }
  return quadratic(
    a,
    new Float64Array(n).map((_, i) => 8 - (16 * i) / (n - 1)),
  );
}
