import type { RuleBuilder } from "../types.js";
import { call, elementwise } from "./define.js";

export const sin = elementwise({
  name: "sin",
  arity: 1,
  summary: "sine",
  js: ([a]) => `Math.sin(${a})`,
  partials: (b, [x]) => [call(b, "cos", x)],
  domain: [[-4, 4]],
  examples: [{ args: [Math.PI / 2], value: 1 }],
});

export const cos = elementwise({
  name: "cos",
  arity: 1,
  summary: "cosine",
  js: ([a]) => `Math.cos(${a})`,
  partials: (b, [x]) => [b.neg(call(b, "sin", x))],
  domain: [[-4, 4]],
  examples: [{ args: [0], value: 1 }],
});

export const tan = elementwise({
  name: "tan",
  arity: 1,
  summary: "tangent",
  js: ([a]) => `Math.tan(${a})`,
  partials: (b, _args, out) => [b.add(b.constant(1), call(b, "square", out))],
  domain: [[-1.2, 1.2]],
  examples: [{ args: [Math.PI / 4], value: 0.9999999999999999 }],
});

/** 1/√(1 − a²), shared by asin and acos. */
function unitCircleSlope(b: RuleBuilder, x: number): number {
  return call(b, "reciprocal", call(b, "sqrt", b.sub(b.constant(1), call(b, "square", x))));
}

export const asin = elementwise({
  name: "asin",
  arity: 1,
  summary: "inverse sine",
  js: ([a]) => `Math.asin(${a})`,
  partials: (b, [x]) => [unitCircleSlope(b, x)],
  domain: [[-0.9, 0.9]],
  examples: [{ args: [1], value: Math.PI / 2 }],
});

export const acos = elementwise({
  name: "acos",
  arity: 1,
  summary: "inverse cosine",
  js: ([a]) => `Math.acos(${a})`,
  partials: (b, [x]) => [b.neg(unitCircleSlope(b, x))],
  domain: [[-0.9, 0.9]],
  examples: [{ args: [-1], value: Math.PI }],
});

export const atan = elementwise({
  name: "atan",
  arity: 1,
  summary: "inverse tangent",
  js: ([a]) => `Math.atan(${a})`,
  partials: (b, [x]) => [call(b, "reciprocal", b.add(b.constant(1), call(b, "square", x)))],
  domain: [[-3, 3]],
  examples: [{ args: [1], value: Math.PI / 4 }],
});

export const atan2 = elementwise({
  name: "atan2",
  operands: "y, x",
  tensorCases: [{ name: "[4]·[2,1]", args: [{ shape: [4] }, { shape: [2, 1], range: [0.5, 2] }] }],
  arity: 2,
  summary: "angle of the point (x, y): atan2(y, x)",
  js: ([y, x]) => `Math.atan2(${y}, ${x})`,
  partials: (b, [y, x], _out, needs) => {
    const r2 = b.add(call(b, "square", x), call(b, "square", y));
    return [needs[0] ? b.div(x, r2) : null, needs[1] ? b.neg(b.div(y, r2)) : null];
  },
  domain: [
    [-3, 3],
    [0.3, 3],
  ],
  examples: [{ args: [1, -1], value: (3 * Math.PI) / 4 }],
});

export const hypot = elementwise({
  name: "hypot",
  arity: 2,
  commutative: true,
  summary: "√(a² + b²) without overflow",
  js: ([a, b]) => `Math.hypot(${a}, ${b})`,
  partials: (b, [x, y], out, needs) => {
    // At the origin a/out is 0/0; the chosen one-sided value is 0.
    const atOrigin = needs[0] || needs[1] ? b.op("eq", [out, b.constant(0)]) : -1;
    const safe = (n: number) => b.op("select", [atOrigin, b.constant(0), b.div(n, out)]);
    return [needs[0] ? safe(x) : null, needs[1] ? safe(y) : null];
  },
  domain: [
    [-3, 3],
    [-3, 3],
  ],
  examples: [
    { args: [3, 4], value: 5 },
    { args: [1e200, 1e200], value: 1.4142135623730952e200 },
  ],
  kinks: { doc: "At (0, 0) both partials are 0.", cases: [{ args: [0, 0], partials: [0, 0] }] },
});
