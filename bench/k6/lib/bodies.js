// The request bodies of the k6 scenarios and the checks of their answers, for both transports.
// Plain ECMAScript with no imports: k6 runs it (bench/k6/http.js, bench/k6/grpc.js) and so does Node
// (test/deploy/k6.test.ts sends the same bodies to the service and applies the same checks). Base64 is
// passed in (k6/encoding in k6, Buffer in Node). gRPC messages are written in the protobuf JSON
// mapping that k6's gRPC client takes and gives: lowerCamelCase names, bytes as base64.

// ---- W1: the worked example ------------------------------------------------------------------

export const W1_EXPRESSION = "x1*exp(-0.5*(x1^2+x2^2))";
export const W1_POINT = { x1: 2, x2: 0.5 };
/** The closed form at W1_POINT: f = x1·e, ∂f/∂x1 = (1 − x1²)·e, ∂f/∂x2 = −x1·x2·e with e = exp(−2.125). */
export const W1_EXPECTED = { value: 0.23886593653343924, x1: -0.35829890480015886, x2: -0.11943296826671962 };

export function w1Rest() {
  return { function: { expression: W1_EXPRESSION }, point: { x1: W1_POINT.x1, x2: W1_POINT.x2 } };
}

export function w1Grpc() {
  return { function: { expression: W1_EXPRESSION }, point: { values: { x1: W1_POINT.x1, x2: W1_POINT.x2 } } };
}

function w1Problem(value, x1, x2) {
  return (
    near("W1 value", value, W1_EXPECTED.value, 1e-15) ||
    near("W1 df/dx1", x1, W1_EXPECTED.x1, 1e-15) ||
    near("W1 df/dx2", x2, W1_EXPECTED.x2, 1e-15)
  );
}

/** An empty string when the answer of POST /v1/differentiate is right, else what is wrong. */
export function w1RestProblem(answer) {
  const g = answer.gradient || {};
  return w1Problem(answer.value, g.x1, g.x2);
}

export function w1GrpcProblem(message, b64decode) {
  const r = message.result || {};
  return w1Problem(singleOutput(r, b64decode), scalarOf(r.gradient, "x1", b64decode), scalarOf(r.gradient, "x2", b64decode));
}

// ---- W2: the extended Rosenbrock function, value and gradient ------------------------------------

export const ROSENBROCK = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)";
export const W2_N = 1000;

/** The point of ../shared/workloads.md: x[i] = 0.5 + 0.001·(i mod 100). */
export function w2Point(n) {
  const x = new Array(n);
  for (let i = 0; i < n; i++) x[i] = 0.5 + 0.001 * (i % 100);
  return x;
}

/** Closed form: f = Σ 100·(x[i+1] − x[i]²)² + (1 − x[i])², and its gradient. */
export function rosenbrock(x) {
  const n = x.length;
  const gradient = new Array(n).fill(0);
  let value = 0;
  for (let i = 0; i < n - 1; i++) {
    const d = x[i + 1] - x[i] * x[i];
    const e = 1 - x[i];
    value += 100 * d * d + e * e;
    gradient[i] += -400 * d * x[i] - 2 * e;
    gradient[i + 1] += 200 * d;
  }
  return { value, gradient };
}

function w2Function(n) {
  return { expression: ROSENBROCK, inputs: [{ name: "x", shape: [n] }] };
}

export function w2Rest(n) {
  return { function: w2Function(n), point: { x: w2Point(n) } };
}

export function w2Grpc(n) {
  return { function: w2Function(n), point: { tensors: { x: { shape: [n], values: w2Point(n) } } } };
}

function w2Problem(n, value, gradient) {
  const want = rosenbrock(w2Point(n));
  return near("W2 value", value, want.value, 1e-12) || nearVector("W2 gradient", gradient, want.gradient, 1e-12);
}

export function w2RestProblem(answer, n) {
  return w2Problem(n, answer.value, answer.gradient?.x?.data);
}

export function w2GrpcProblem(message, n, b64decode) {
  const r = message.result || {};
  return w2Problem(n, singleOutput(r, b64decode), tensorOf(r.gradient, "x", b64decode));
}

// ---- W3: one training step of examples/mlp.model.json at the workload's data ---------------------

export const W3_LOSS = 2.46326573359118;

/** The workloads' generator (bench/workloads/lcg.ts): s ← 1664525·s + 1013904223 mod 2³², (s >>> 8)/2²⁴. */
export function lcg(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    return (s >>> 8) / 16777216;
  };
}

/** W3's data and parameters, drawn as bench/workloads/w3.ts draws them (X, W1, b1, W2, b2, labels). */
export function w3Data() {
  const rnd = lcg(12345);
  const fill = (length, draw) => {
    const a = new Float64Array(length);
    for (let i = 0; i < length; i++) a[i] = draw();
    return a;
  };
  const glorot = (fanIn, fanOut) => () => (2 * rnd() - 1) * Math.sqrt(6 / (fanIn + fanOut));
  const bias = () => (2 * rnd() - 1) * 0.01;
  const x = fill(128 * 784, rnd);
  const w1 = fill(784 * 256, glorot(784, 256));
  const b1 = fill(256, bias);
  const w2 = fill(256 * 10, glorot(256, 10));
  const b2 = fill(10, bias);
  const y = fill(128, () => Math.floor(rnd() * 10));
  return [
    { name: "x", shape: [128, 784], data: x },
    { name: "y", shape: [128], data: y },
    { name: "fc1.weight", shape: [784, 256], data: w1 },
    { name: "fc1.bias", shape: [256], data: b1 },
    { name: "fc2.weight", shape: [256, 10], data: w2 },
    { name: "fc2.bias", shape: [10], data: b2 },
  ];
}

/**
 * REST: every tensor as {shape, dtype, base64} (little-endian float64), and the answer's tensors asked
 * for the same way: 200,000 gradient entries as decimal JSON would cost the client more to read than
 * the server to compute them.
 */
export function w3Rest(model, b64encode) {
  const point = {};
  for (const t of w3Data()) point[t.name] = { shape: t.shape, dtype: "float64", base64: b64encode(littleEndian(t.data)) };
  return { function: { model: model }, point: point, encoding: "base64" };
}

/**
 * gRPC: every tensor as raw little-endian float64 bytes (base64 in the JSON mapping), the model as the
 * typed Model message (this model's JSON is already its JSON mapping: dense layers, the loss by name).
 */
export function w3Grpc(model, b64encode) {
  const tensors = {};
  for (const t of w3Data()) tensors[t.name] = { shape: t.shape, dtype: "ELEMENT_TYPE_FLOAT64", raw: b64encode(littleEndian(t.data)) };
  return { function: { sequentialModel: model }, point: { tensors: tensors } };
}

/** Softmax rows sum to one, so the gradient of the last bias sums to zero: a closed-form check. */
function w3Problem(loss, db2) {
  const bad = near("W3 loss", loss, W3_LOSS, 1e-9);
  if (bad) return bad;
  if (db2?.length !== 10) return "W3 fc2.bias gradient: expected 10 entries";
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += db2[i];
  return Math.abs(sum) < 1e-12 ? "" : `W3 fc2.bias gradient sums to ${sum}, not 0`;
}

export function w3RestProblem(answer, b64decode) {
  const db2 = answer.gradient?.["fc2.bias"];
  return w3Problem(answer.value, db2?.base64 !== undefined ? float64s(b64decode(db2.base64)) : db2?.data);
}

export function w3GrpcProblem(message, b64decode) {
  const r = message.result || {};
  return w3Problem(singleOutput(r, b64decode), tensorOf(r.gradient, "fc2.bias", b64decode));
}

// ---- helpers ---------------------------------------------------------------------------------

function near(what, got, want, rel) {
  if (typeof got === "number" && Math.abs(got - want) <= rel * Math.max(1, Math.abs(want))) return "";
  return `${what}: got ${got}, expected ${want}`;
}

function nearVector(what, got, want, rel) {
  if (!got || got.length !== want.length) return `${what}: got ${got ? got.length : "no"} entries, expected ${want.length}`;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  return worst <= rel * Math.max(1, scale) ? "" : `${what}: off by ${worst} (largest entry ${scale})`;
}

/** Bytes of a Float64Array in little-endian order, as an ArrayBuffer. */
function littleEndian(data) {
  const out = new DataView(new ArrayBuffer(data.length * 8));
  for (let i = 0; i < data.length; i++) out.setFloat64(i * 8, data[i], true);
  return out.buffer;
}

/** The single output of a gRPC answer: Result.value, the shortcut REST's `value` is (a scalar here). */
function singleOutput(r, b64decode) {
  return r.value ? scalarOf({ value: r.value }, "value", b64decode) : undefined;
}

/** A result tensor of the gRPC answer (JSON mapping) as numbers: `values`, or `raw` float64 bytes. */
function tensorOf(map, name, b64decode) {
  const t = map?.[name];
  if (!t) return undefined;
  return t.raw ? float64s(b64decode(t.raw)) : t.values;
}

/** Little-endian float64 bytes as numbers. */
function float64s(buffer) {
  const view = new DataView(buffer);
  const out = new Array(view.byteLength / 8);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

function scalarOf(map, name, b64decode) {
  const v = tensorOf(map, name, b64decode);
  return v && v.length === 1 ? v[0] : undefined;
}
