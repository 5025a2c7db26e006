import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, type JsonObject, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  DifferentiateRequestSchema,
  type DifferentiateResponse,
  DifferentiateResponseSchema,
  ElementType,
  type Tensor,
} from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { W1_EXPRESSION, W1_POINT, W1_REFERENCE } from "../workloads/w1.js";
import { W2_REFERENCE, w2Point, w2ValueAndGradient } from "../workloads/w2.js";
import { generateW3, W3_REFERENCE_LOSS } from "../workloads/w3.js";

/**
 * The three load scenarios of `npm run bench:load` (and, written for k6, of bench/k6/): the worked
 * example (W1), the Rosenbrock gradient at n = 1,000 (W2, a tensor expression) and one W3 training
 * step (the examples/mlp.model.json model at the workload's data). Each has its HTTP body, its
 * encoded gRPC request and checks that compare the answer's numbers with the closed forms.
 */

/** The extended Rosenbrock function of ../shared/workloads.md (W2) as a tensor expression. */
export const ROSENBROCK = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)";
export const W2_N = 1000;

export interface Scenario {
  readonly name: "W1" | "W2" | "W3";
  readonly http: { readonly body: Buffer; readonly headers: Record<string, string> };
  /** An encoded adjoint.v1.DifferentiateRequest. */
  readonly grpc: Buffer;
  /** undefined when the answer is right, else what is wrong with it. */
  checkHttp(status: number, contentHeaderLength: string | null, body: Buffer): string | undefined;
  checkGrpc(bytes: Uint8Array): string | undefined;
}

/** The repository root: the nearest folder above this module with a package.json (from src or dist). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above bench/load");
    dir = up;
  }
  return dir;
}

const JSON_HEADERS = { "content-type": "application/json" };

/** |a − b| within `rel` of max(1, |b|), else a message. */
function near(what: string, got: number | undefined, want: number, rel: number): string | undefined {
  if (typeof got === "number" && Math.abs(got - want) <= rel * Math.max(1, Math.abs(want))) return undefined;
  return `${what}: got ${got}, expected ${want}`;
}

/** Largest difference between two vectors relative to the largest entry of `want`, checked against `rel`. */
function nearVector(what: string, got: ArrayLike<number> | undefined, want: ArrayLike<number>, rel: number): string | undefined {
  if (!got || got.length !== want.length) return `${what}: got ${got?.length ?? "no"} entries, expected ${want.length}`;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  return worst <= rel * Math.max(1, scale) ? undefined : `${what}: off by ${worst} (scale ${scale})`;
}

function statusError(status: number, body: Buffer): string {
  return `HTTP ${status}: ${body.subarray(0, 300).toString()}`;
}

/** A gRPC result tensor as numbers: one value for a scalar, raw little-endian float64 bytes otherwise. */
export function tensorValues(t: Tensor | undefined): Float64Array | undefined {
  if (!t) return undefined;
  if (t.raw.byteLength > 0) {
    const copy = new Uint8Array(t.raw);
    return new Float64Array(copy.buffer, 0, copy.byteLength / 8);
  }
  return Float64Array.from(t.values);
}

function encode(init: MessageInitShape<typeof DifferentiateRequestSchema>): Buffer {
  return Buffer.from(toBinary(DifferentiateRequestSchema, create(DifferentiateRequestSchema, init)));
}

function decode(bytes: Uint8Array): DifferentiateResponse {
  return fromBinary(DifferentiateResponseSchema, bytes);
}

function w1(): Scenario {
  const body = { function: { expression: W1_EXPRESSION }, point: { ...W1_POINT } };
  const check = (f: number | undefined, x1: number | undefined, x2: number | undefined) =>
    near("W1 value", f, W1_REFERENCE.f, 1e-15) ??
    near("W1 ∂f/∂x1", x1, W1_REFERENCE.x1, 1e-15) ??
    near("W1 ∂f/∂x2", x2, W1_REFERENCE.x2, 1e-15);
  return {
    name: "W1",
    http: { body: Buffer.from(JSON.stringify(body)), headers: JSON_HEADERS },
    grpc: encode({ function: { source: { case: "expression", value: W1_EXPRESSION } }, point: { values: body.point } }),
    checkHttp(status, _n, bytes) {
      if (status !== 200) return statusError(status, bytes);
      const a = JSON.parse(bytes.toString()) as { value?: number; gradient?: { x1?: number; x2?: number } };
      return check(a.value, a.gradient?.x1, a.gradient?.x2);
    },
    checkGrpc(bytes) {
      const r = decode(bytes).result;
      return check(tensorValues(r?.outputs.f)?.[0], tensorValues(r?.gradient.x1)?.[0], tensorValues(r?.gradient.x2)?.[0]);
    },
  };
}

function w2(n = W2_N): Scenario {
  const x = w2Point(n);
  const gradient = new Float64Array(n);
  const value = w2ValueAndGradient(x, gradient);
  const inputs = [{ name: "x", shape: [n] }];
  const body = { function: { expression: ROSENBROCK, inputs }, point: { x: Array.from(x) } };
  const check = (f: number | undefined, g: ArrayLike<number> | undefined) =>
    near("W2 value", f, W2_REFERENCE[n] ?? value, 1e-12) ?? nearVector("W2 gradient", g, gradient, 1e-12);
  return {
    name: "W2",
    http: { body: Buffer.from(JSON.stringify(body)), headers: JSON_HEADERS },
    grpc: encode({
      function: { source: { case: "expression", value: ROSENBROCK }, inputs },
      point: { tensors: { x: { shape: [n], dtype: ElementType.FLOAT64, raw: new Uint8Array(x.buffer) } } },
    }),
    checkHttp(status, _n, bytes) {
      if (status !== 200) return statusError(status, bytes);
      const a = JSON.parse(bytes.toString()) as { value?: number; gradient?: { x?: { data?: number[] } } };
      return check(a.value, a.gradient?.x?.data);
    },
    checkGrpc(bytes) {
      const r = decode(bytes).result;
      return check(tensorValues(r?.outputs.f)?.[0], tensorValues(r?.gradient.x));
    },
  };
}

/** The W3 request's parts: the model of examples/mlp.model.json and the point's tensors, in order. */
export function w3Request(): { model: JsonObject; tensors: [string, number[], Float64Array][] } {
  const d = generateW3();
  const model = JSON.parse(readFileSync(join(repoRoot(), "examples/mlp.model.json"), "utf8"));
  return {
    model,
    tensors: [
      ["x", [128, 784], d.X],
      ["y", [128], Float64Array.from(d.labels)],
      ["fc1.weight", [784, 256], d.W1],
      ["fc1.bias", [256], d.b1],
      ["fc2.weight", [256, 10], d.W2],
      ["fc2.bias", [10], d.b2],
    ],
  };
}

/**
 * W3 in the binary framing (HTTP) and as raw bytes (gRPC). Besides the loss, the check uses a closed
 * form of the gradient: softmax rows sum to one, so the gradient of fc2.bias sums to zero.
 */
function w3(): Scenario {
  const { model, tensors } = w3Request();
  let offset = 0;
  const point: Record<string, unknown> = {};
  for (const [name, shape, data] of tensors) {
    point[name] = { shape, dtype: "float64", binary: { offset, length: data.byteLength } };
    offset += data.byteLength;
  }
  const header = Buffer.from(JSON.stringify({ function: { model }, point }));
  const bytesOf = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const check = (loss: number | undefined, db2: ArrayLike<number> | undefined) => {
    const bad = near("W3 loss", loss, W3_REFERENCE_LOSS, 1e-9);
    if (bad) return bad;
    if (db2?.length !== 10) return `W3 fc2.bias gradient: ${db2?.length ?? "no"} entries`;
    let sum = 0;
    for (let i = 0; i < db2.length; i++) sum += db2[i];
    return Math.abs(sum) < 1e-12 ? undefined : `W3 fc2.bias gradient sums to ${sum}, not 0`;
  };
  return {
    name: "W3",
    http: {
      body: Buffer.concat([header, ...tensors.map(([, , data]) => bytesOf(data))]),
      headers: {
        "content-type": "application/vnd.adjoint+binary",
        "adjoint-header-length": String(header.byteLength),
        accept: "application/vnd.adjoint+binary",
      },
    },
    grpc: encode({
      function: { source: { case: "model", value: model } },
      point: {
        tensors: Object.fromEntries(
          tensors.map(([name, shape, data]) => [name, { shape, dtype: ElementType.FLOAT64, raw: new Uint8Array(bytesOf(data)) }]),
        ),
      },
    }),
    checkHttp(status, headerLength, bytes) {
      if (status !== 200) return statusError(status, bytes);
      const n = Number(headerLength ?? bytes.byteLength);
      const a = JSON.parse(bytes.subarray(0, n).toString()) as {
        value?: number;
        gradient?: Record<string, { binary?: { offset: number; length: number } }>;
      };
      const ref = a.gradient?.["fc2.bias"]?.binary;
      const db2 = ref ? new Float64Array(Uint8Array.from(bytes.subarray(n + ref.offset, n + ref.offset + ref.length)).buffer) : undefined;
      return check(a.value, db2);
    },
    checkGrpc(bytes) {
      const r = decode(bytes).result;
      const outputs = Object.values(r?.outputs ?? {});
      return check(outputs.length === 1 ? tensorValues(outputs[0])?.[0] : undefined, tensorValues(r?.gradient["fc2.bias"]));
    },
  };
}

export const SCENARIOS = { W1: w1, W2: w2, W3: w3 } as const;
