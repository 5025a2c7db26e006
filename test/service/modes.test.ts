import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JacobianMethod, Mode, type Tensor } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { elements, num, startTestServer, type TestServer } from "./helpers.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

const ROSENBROCK = { expression: "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)", inputs: [{ name: "x", shape: [4] }] };
const X = [0.3, -0.7, 1.2, 0.9];
const tensorPoint = { x: { shape: [4], data: X } };
const grpcTensor = (shape: number[], values: number[]) => ({ shape, values });

/** The Rosenbrock Hessian in closed form. */
function hessian(x: readonly number[]): number[] {
  const n = x.length;
  const h = new Array<number>(n * n).fill(0);
  for (let i = 0; i < n - 1; i++) {
    h[i * n + i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2;
    h[(i + 1) * n + i + 1] += 200;
    h[i * n + i + 1] -= 400 * x[i];
    h[(i + 1) * n + i] -= 400 * x[i];
  }
  return h;
}

describe("beyond the gradient, over both transports", () => {
  it("hessian: the closed form, the same numbers over gRPC", async () => {
    const http = await s.post("/v1/differentiate", { function: ROSENBROCK, point: tensorPoint, mode: "hessian" });
    expect(http.status).toBe(200);
    const h = (http.body.hessian as Record<string, Record<string, { shape: number[]; data: number[] }>>).x.x;
    expect(h.shape).toEqual([4, 4]);
    hessian(X).forEach((v, i) => {
      expect(h.data[i]).toBeCloseTo(v, 9);
    });
    const g = await s.differentiate({
      function: { source: { case: "expression", value: ROSENBROCK.expression }, inputs: [{ name: "x", shape: [4] }] },
      point: { tensors: { x: grpcTensor([4], X) } },
      mode: Mode.HESSIAN,
    });
    expect(elements(g.result?.hessian.x.tensors.x as Tensor)).toEqual(h.data);
  });

  it("hvp: H·v without the Hessian", async () => {
    const v = [1, -1, 2, 0.5];
    const http = await s.post("/v1/differentiate", {
      function: ROSENBROCK,
      point: tensorPoint,
      mode: "hvp",
      tangent: { x: { shape: [4], data: v } },
    });
    const hv = (http.body.hvp as Record<string, { data: number[] }>).x.data;
    const h = hessian(X);
    hv.forEach((value, i) => {
      expect(value).toBeCloseTo(
        v.reduce((acc, vj, j) => acc + h[i * 4 + j] * vj, 0),
        9,
      );
    });
  });

  it("jacobian: forward and reverse agree, and the method is reported", async () => {
    const fn = { expressions: { u: "x*y", v: "sin(x) + y^2", w: "x - y" } };
    const point = { x: 0.5, y: -1.5 };
    const fwd = await s.post("/v1/differentiate", { function: fn, point, mode: "jacobian" });
    const rev = await s.post("/v1/differentiate", { function: fn, point, mode: "jacobian", method: "reverse" });
    expect(fwd.body.method).toBe("forward");
    expect(rev.body.method).toBe("reverse");
    expect(fwd.body.jacobian).toEqual(rev.body.jacobian);
    expect(fwd.body.jacobian).toEqual({ u: { x: -1.5, y: 0.5 }, v: { x: Math.cos(0.5), y: -3 }, w: { x: 1, y: -1 } });
    const g = await s.differentiate({
      function: {
        source: { case: "expressions", value: { outputs: Object.entries(fn.expressions).map(([name, text]) => ({ name, text })) } },
      },
      point: { values: { x: 0.5, y: -1.5 } },
      mode: Mode.JACOBIAN,
      method: JacobianMethod.REVERSE,
    });
    expect(g.result?.method).toBe("reverse");
    expect(num(g.result?.jacobian.v.tensors.x)).toBe(Math.cos(0.5));
  });

  it("derivative: n-th and mixed partials; divergence and laplacian", async () => {
    const third = await s.post("/v1/differentiate", {
      function: { expression: "sin(x)" },
      point: { x: 0.7 },
      mode: "derivative",
      order: 3,
    });
    expect(third.body.derivative).toBeCloseTo(-Math.cos(0.7), 14);
    expect(third.body.partials).toEqual(["x", "x", "x"]);
    const mixed = await s.post("/v1/differentiate", {
      function: { expression: "x^2*y^3" },
      point: { x: 0.5, y: 2 },
      mode: "derivative",
      wrt: ["x", "y", "y"],
    });
    expect(mixed.body.derivative).toBeCloseTo(12 * 0.5 * 2, 12);
    const lap = await s.post("/v1/differentiate", {
      function: { expression: "exp(x)*sin(y)" },
      point: { x: 0.3, y: 1.1 },
      mode: "laplacian",
    });
    expect(Math.abs(lap.body.laplacian as number)).toBeLessThan(1e-14);
    const div = await s.post("/v1/differentiate", {
      function: { expressions: { a: "x^2", b: "x*y" } },
      point: { x: 3, y: 2 },
      mode: "divergence",
    });
    expect(div.body.divergence).toBe(2 * 3 + 3);
    const g = await s.differentiate({
      function: { source: { case: "expression", value: "sin(x)" } },
      point: { values: { x: 0.7 } },
      mode: Mode.DERIVATIVE,
      order: 3,
    });
    expect(num(g.result?.derivative)).toBe(third.body.derivative);
    expect(g.result?.partials).toEqual(["x", "x", "x"]);
  });

  it("check: passes a correct gradient and reports per input", async () => {
    const http = await s.post("/v1/differentiate", { function: ROSENBROCK, point: tensorPoint, mode: "check" });
    const check = http.body.check as { passed: boolean; inputs: Record<string, { elements: number; absolute: number; passed: boolean }> };
    expect(check.passed).toBe(true);
    expect(check.inputs.x.elements).toBe(4);
    const g = await s.differentiate({
      function: { source: { case: "expression", value: ROSENBROCK.expression }, inputs: [{ name: "x", shape: [4] }] },
      point: { tensors: { x: grpcTensor([4], X) } },
      mode: Mode.CHECK,
    });
    expect(g.result?.check?.passed).toBe(true);
    expect(g.result?.check?.inputs.x.elements).toBe(4);
  });

  it("batches: a column of points for the new modes", async () => {
    const r = await s.post("/v1/differentiate", {
      function: { expression: "x^3*y" },
      columns: { x: [1, 2, 3], y: [1, 1, 2] },
      mode: "hessian",
    });
    expect(r.status).toBe(200);
    const columns = r.body.columns as { hessian: Record<string, Record<string, { shape: number[]; data: number[] }>> };
    expect(columns.hessian.x.x).toEqual({ shape: [3], data: [6, 12, 36] });
    expect(columns.hessian.x.y).toEqual({ shape: [3], data: [3, 12, 27] });
  });

  it("refuse settings that do not belong to the mode", async () => {
    const r = await s.post("/v1/differentiate", { function: { expression: "x" }, point: { x: 1 }, mode: "hessian", trace: true });
    expect(r.status).toBe(400);
    expect(r.body.detail).toMatch(/trace: only the value, reverse and forward modes record a trace/);
    const o = await s.post("/v1/differentiate", { function: { expression: "x" }, point: { x: 1 }, order: 2 });
    expect(o.status).toBe(400);
    expect(o.body.detail).toMatch(/order: only the derivative mode takes an order/);
    const h = await s.post("/v1/differentiate", { function: { expression: "x" }, point: { x: 1 }, mode: "hvp" });
    expect(h.body.detail).toMatch(/mode hvp needs the vector v/);
  });
});

describe("tensor encodings of the JSON answer", () => {
  it("writes tensors as base64 bytes when asked, decoding to the same numbers", async () => {
    const body = { function: ROSENBROCK, point: tensorPoint };
    const plain = await s.post("/v1/differentiate", body);
    const packed = await s.post("/v1/differentiate", { ...body, encoding: "base64" });
    const grad = (packed.body.gradient as Record<string, { shape: number[]; dtype: string; base64: string }>).x;
    expect(grad.shape).toEqual([4]);
    expect(grad.dtype).toBe("float64");
    const bytes = Buffer.from(grad.base64, "base64");
    const values = Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, 4));
    expect(values).toEqual((plain.body.gradient as Record<string, { data: number[] }>).x.data);
    expect(packed.body.value).toBe(plain.body.value);
  });
});
