import { call, elementwise } from "./define.js";

export const exp = elementwise({
  name: "exp",
  arity: 1,
  summary: "eᵃ",
  js: ([a]) => `Math.exp(${a})`,
  partials: (_b, _args, out) => [out],
  domain: [[-3, 3]],
  examples: [{ args: [1], value: Math.E }],
});

export const expm1 = elementwise({
  name: "expm1",
  arity: 1,
  summary: "eᵃ − 1, accurate near 0",
  js: ([a]) => `Math.expm1(${a})`,
  partials: (b, [x]) => [call(b, "exp", x)],
  domain: [[-3, 3]],
  examples: [{ args: [1e-10], value: 1.00000000005e-10 }],
});

export const log = elementwise({
  name: "log",
  arity: 1,
  summary: "natural logarithm",
  aliases: ["ln"],
  js: ([a]) => `Math.log(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", x)],
  domain: [[0.1, 5]],
  examples: [{ args: [Math.E], value: 1 }],
});

export const log1p = elementwise({
  name: "log1p",
  arity: 1,
  summary: "log(1 + a), accurate near 0",
  js: ([a]) => `Math.log1p(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", b.add(x, b.constant(1)))],
  domain: [[-0.9, 4]],
  examples: [{ args: [1e-10], value: 9.9999999995e-11 }],
});

export const log2 = elementwise({
  name: "log2",
  arity: 1,
  summary: "base-2 logarithm",
  js: ([a]) => `Math.log2(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", b.mul(x, b.constant(Math.LN2)))],
  domain: [[0.1, 5]],
  examples: [{ args: [8], value: 3 }],
});

export const log10 = elementwise({
  name: "log10",
  arity: 1,
  summary: "base-10 logarithm",
  js: ([a]) => `Math.log10(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", b.mul(x, b.constant(Math.LN10)))],
  domain: [[0.1, 5]],
  examples: [{ args: [1000], value: 3 }],
});
