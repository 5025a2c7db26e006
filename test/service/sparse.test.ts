import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Mode, type Tensor } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { elements, startTestServer, type TestServer } from "./helpers.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ maxAnswerElements: 50_000 });
});
afterAll(async () => {
  await s?.close();
});

const N = 6;
const ROSENBROCK = { expression: "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)", inputs: [{ name: "x", shape: [N] }] };
const X = [0.3, -0.7, 1.2, 0.9, -0.1, 0.4];
const point = { x: { shape: [N], data: X } };
const grpcFunction = { source: { case: "expression" as const, value: ROSENBROCK.expression }, inputs: [{ name: "x", shape: [N] }] };

interface Csr {
  format: string;
  shape: number[];
  indptr: number[];
  indices: number[];
  data: number[];
}

function toDense(m: Pick<Csr, "shape" | "indptr" | "indices">, data: ArrayLike<number>): number[] {
  const out = new Array<number>(m.shape[0] * m.shape[1]).fill(0);
  for (let r = 0; r < m.shape[0]; r++) for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) out[r * m.shape[1] + m.indices[k]] = data[k];
  return out;
}

const fromBase64 = (t: { base64: string }, type: "int32" | "float64") => {
  const bytes = Buffer.from(t.base64, "base64");
  return type === "int32"
    ? Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4))
    : Array.from(new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
};

describe("sparse Jacobians and Hessians over both transports", () => {
  it("hessian with sparse: CSR equal to the dense Hessian, 3 colours, the same over base64 and gRPC", async () => {
    const dense = await s.post("/v1/differentiate", { function: ROSENBROCK, point, mode: "hessian" });
    const want = (dense.body.hessian as Record<string, Record<string, { data: number[] }>>).x.x.data;
    const http = await s.post("/v1/differentiate", { function: ROSENBROCK, point, mode: "hessian", sparse: true });
    expect(http.status).toBe(200);
    expect(http.body.colors).toBe(3);
    const csr = (http.body.hessian as Record<string, Record<string, Csr>>).x.x;
    expect(csr.format).toBe("csr");
    expect(csr.shape).toEqual([N, N]);
    expect(csr.indices.length).toBe(3 * N - 2);
    toDense(csr, csr.data).forEach((v, i) => {
      expect(v).toBeCloseTo(want[i], 10);
    });

    const b64 = await s.post("/v1/differentiate", { function: ROSENBROCK, point, mode: "hessian", sparse: true, encoding: "base64" });
    const m = (b64.body.hessian as Record<string, Record<string, Record<string, { base64: string }>>>).x.x;
    expect(fromBase64(m.indptr, "int32")).toEqual(csr.indptr);
    expect(fromBase64(m.indices, "int32")).toEqual(csr.indices);
    expect(fromBase64(m.data, "float64")).toEqual(csr.data);

    const g = await s.differentiate({
      function: grpcFunction,
      point: { tensors: { x: { shape: [N], values: X } } },
      mode: Mode.HESSIAN,
      sparse: true,
    });
    const gm = g.result?.sparseHessian.x.matrices.x;
    expect(g.result?.colors).toBe(3);
    expect(gm?.indptr).toEqual(csr.indptr);
    expect(gm?.indices).toEqual(csr.indices);
    expect(elements(gm?.data as Tensor)).toEqual(csr.data);
  });

  it("jacobian with sparse: a banded residual over several inputs, forward and reverse", async () => {
    const fn = {
      expressions: { r: "x[1:] * x[:-1] + w", q: "sum(w^2)" },
      inputs: [
        { name: "x", shape: [4] },
        { name: "w", shape: [3] },
      ],
    };
    const p = { x: { shape: [4], data: [1, 2, 3, 4] }, w: { shape: [3], data: [0.5, -1, 2] } };
    for (const method of ["forward", "reverse"] as const) {
      const dense = await s.post("/v1/differentiate", { function: fn, point: p, mode: "jacobian", method: "forward" });
      const sparse = await s.post("/v1/differentiate", { function: fn, point: p, mode: "jacobian", sparse: true, method });
      expect(sparse.status).toBe(200);
      expect(sparse.body.method).toBe(method);
      const dj = dense.body.jacobian as Record<string, Record<string, { data: number[] } | number>>;
      const sj = sparse.body.jacobian as Record<string, Record<string, Csr>>;
      for (const o of ["r", "q"]) {
        for (const i of ["x", "w"]) {
          const d = dj[o][i];
          const want = typeof d === "number" ? [d] : d.data;
          toDense(sj[o][i], sj[o][i].data).forEach((v, k) => {
            expect(v).toBeCloseTo(want[k], 12);
          });
        }
      }
    }
  });

  it("sparsity: the patterns alone, with colour counts", async () => {
    const http = await s.post("/v1/differentiate", { function: ROSENBROCK, point, mode: "sparsity" });
    expect(http.status).toBe(200);
    const sp = http.body.sparsity as { hessian: Record<string, Record<string, Csr>>; colors: Record<string, unknown> };
    expect(sp.colors).toMatchObject({ jacobian: 1, hessian: 3 });
    expect(sp.hessian.x.x.indices.length).toBe(3 * N - 2);
    const g = await s.differentiate({ function: grpcFunction, point: { tensors: { x: { shape: [N], values: X } } }, mode: Mode.SPARSITY });
    expect(g.result?.sparsity?.hessianColors).toBe(3);
    expect(g.result?.sparsity?.hessian.x.matrices.x.indices).toEqual(sp.hessian.x.x.indices);
  });

  it("refuses a dense Hessian over the answer limit, suggesting sparse: true, and answers the sparse one", async () => {
    const n = 300;
    const big = { expression: ROSENBROCK.expression, inputs: [{ name: "x", shape: [n] }] };
    const p = { x: { shape: [n], data: Array.from({ length: n }, (_, i) => 0.5 + 0.01 * i) } };
    const dense = await s.post("/v1/differentiate", { function: big, point: p, mode: "hessian" });
    expect(dense.status).toBe(413);
    expect(JSON.stringify(dense.body)).toContain("sparse: true");
    const sparse = await s.post("/v1/differentiate", { function: big, point: p, mode: "hessian", sparse: true });
    expect(sparse.status).toBe(200);
    expect((sparse.body.hessian as Record<string, Record<string, Csr>>).x.x.data.length).toBe(3 * n - 2);
  });

  it("refuses sparse outside jacobian and hessian", async () => {
    const r = await s.post("/v1/differentiate", { function: ROSENBROCK, point, mode: "reverse", sparse: true });
    expect(r.status).toBe(400);
  });
});
