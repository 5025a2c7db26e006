import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdjointClientError, connect, type Tensor } from "../../src/client/index.js";
import { startTestServer, type TestServer, WORKED_VALUES } from "../service/helpers.js";

/** adjoint/client (src/client) against real servers: both transports, two replicas for re-sending. */

const ROSENBROCK = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)";
const rosenbrock = (n: number) => ({ expression: ROSENBROCK, inputs: [{ name: "x", shape: [n] }] });

let servers: TestServer[] = [];
beforeAll(async () => {
  servers = [await startTestServer(), await startTestServer()];
}, 60_000);
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const url = (s: TestServer, transport: string) => (transport === "http" ? s.base : `grpc://127.0.0.1:${s.app.grpcPort}`);

describe.each(["http", "grpc"])("adjoint/client over %s", (transport) => {
  it("answers the worked example", async () => {
    const client = await connect(url(servers[0], transport));
    const r = await client.differentiate("x1*exp(-0.5*(x1^2+x2^2))", { x1: 2, x2: 0.5 });
    expect(r.value).toBeCloseTo(WORKED_VALUES.f, 15);
    expect(r.gradient?.x1).toBeCloseTo(WORKED_VALUES.x1, 15);
    expect(r.id).toMatch(/^fn_/);
    client.close();
  });

  it("takes and gives Float64Array tensors, exactly", async () => {
    const client = await connect(url(servers[0], transport));
    const x = Float64Array.from({ length: 1000 }, (_, i) => -1 + i / 500);
    const r = await client.differentiate({ expression: "sum(x^3)", inputs: [{ name: "x", shape: [1000] }] }, { x });
    const g = r.gradient?.x as Tensor;
    expect(g.shape).toEqual([1000]);
    expect(g.data).toBeInstanceOf(Float64Array);
    expect(Math.max(...Array.from(g.data, (v, i) => Math.abs(v - 3 * x[i] ** 2)))).toBeLessThan(1e-14);
    const hvp = await client.differentiate(
      rosenbrock(4),
      { x: new Float64Array(4).fill(1) },
      { mode: "hvp", tangent: { x: new Float64Array(4).fill(1) } },
    );
    expect(Array.from((hvp.fields.hvp as Record<string, Tensor>).x.data)).toEqual([402, 202, 202, -200]);
    client.close();
  });

  it("sends a model (typed over gRPC) with the same answer, and keeps the sign of −0", async () => {
    const client = await connect(url(servers[0], transport));
    const model = { input: [2], layers: [{ type: "dense", units: 2, name: "fc" }], loss: { type: "softmax_cross_entropy" } };
    const point = {
      x: { shape: [1, 2], data: Float64Array.of(1, -1) },
      y: { shape: [1], data: Float64Array.of(1) },
      "fc.weight": { shape: [2, 2], data: Float64Array.of(0.1, 0.2, 0.3, 0.4) },
      "fc.bias": { shape: [2], data: Float64Array.of(0, 0) },
    };
    const r = await client.differentiate({ model }, point);
    // logits = [−0.2, −0.2]: equal, so the loss is log 2.
    expect(r.value).toBeCloseTo(Math.LN2, 15);
    const zero = await client.differentiate("-x*y", { x: 0, y: 1 });
    expect(Object.is(zero.value, -0)).toBe(true);
    client.close();
  });

  it("batches by columns", async () => {
    const client = await connect(url(servers[0], transport));
    const r = await client.batch("x1*x2", { x1: Float64Array.of(1, 3, 5), x2: Float64Array.of(2, 4, -6) });
    expect(Array.from((r.value as Tensor).data)).toEqual([2, 12, -30]);
    expect(Array.from((r.gradient as Record<string, Tensor>).x1.data)).toEqual([2, 4, -6]);
    client.close();
  });

  it("raises one error type with kind, field and detail", async () => {
    const client = await connect(url(servers[0], transport));
    const error = await client.differentiate("x1*", { x1: 1 }).catch((e) => e);
    expect(error).toBeInstanceOf(AdjointClientError);
    expect(error.kind).toBe("invalid_argument");
    expect(error.field).toBe("function.expression");
    expect(error.detail).toMatch(/column/);
    client.close();
  });

  it("sends the definition again to a replica that lacks the id", async () => {
    const first = await connect(url(servers[0], transport));
    const second = await connect(url(servers[1], transport));
    const info = await first.register(rosenbrock(transport === "http" ? 5 : 6));
    const x = new Float64Array(info.inputs[0].shape[0]).fill(1);
    const r = await second.differentiate(info, { x });
    expect(r.id).toBe(info.id);
    expect(r.value).toBe(0);
    expect(second.resent).toBe(1);
    await second.differentiate(info, { x });
    expect(second.resent).toBe(1);
    first.close();
    second.close();
  });
});

describe("retries", () => {
  it("waits for Retry-After on 503 and tries again", async () => {
    let calls = 0;
    const server = createServer((req, res) => {
      req.resume();
      calls++;
      if (calls <= 2) {
        res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "0.1" });
        res.end(JSON.stringify({ kind: "resource_exhausted", detail: "queue full" }));
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ value: 2, gradient: { x: 4 }, id: "fn_1", mode: "reverse" }));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = await connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const started = Date.now();
    const r = await client.differentiate("x^2", { x: 2 });
    expect(r.value).toBe(2);
    expect(client.retried).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    server.close();
  });
});
