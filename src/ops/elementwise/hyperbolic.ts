import { call, elementwise } from "./define.js";

export const sinh = elementwise({
  name: "sinh",
  arity: 1,
  summary: "hyperbolic sine",
  js: ([a]) => `Math.sinh(${a})`,
  partials: (b, [x]) => [call(b, "cosh", x)],
  domain: [[-3, 3]],
  examples: [{ args: [0], value: 0 }],
});

export const cosh = elementwise({
  name: "cosh",
  arity: 1,
  summary: "hyperbolic cosine",
  js: ([a]) => `Math.cosh(${a})`,
  partials: (b, [x]) => [call(b, "sinh", x)],
  domain: [[-3, 3]],
  examples: [{ args: [0], value: 1 }],
});

export const tanh = elementwise({
  name: "tanh",
  arity: 1,
  summary: "hyperbolic tangent",
  js: ([a]) => `Math.tanh(${a})`,
  partials: (b, _args, out) => [b.sub(b.constant(1), call(b, "square", out))],
  domain: [[-3, 3]],
  examples: [{ args: [1000], value: 1 }],
});

export const asinh = elementwise({
  name: "asinh",
  arity: 1,
  summary: "inverse hyperbolic sine",
  js: ([a]) => `Math.asinh(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", call(b, "sqrt", b.add(call(b, "square", x), b.constant(1))))],
  domain: [[-3, 3]],
  examples: [{ args: [0], value: 0 }],
});

export const acosh = elementwise({
  name: "acosh",
  arity: 1,
  summary: "inverse hyperbolic cosine",
  js: ([a]) => `Math.acosh(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", call(b, "sqrt", b.sub(call(b, "square", x), b.constant(1))))],
  domain: [[1.2, 4]],
  examples: [{ args: [1], value: 0 }],
});

export const atanh = elementwise({
  name: "atanh",
  arity: 1,
  summary: "inverse hyperbolic tangent",
  js: ([a]) => `Math.atanh(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", b.sub(b.constant(1), call(b, "square", x)))],
  domain: [[-0.9, 0.9]],
  examples: [{ args: [0], value: 0 }],
});
