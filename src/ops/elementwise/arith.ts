import { sameShape } from "../../tensor/shape.js";
import type { RuleBuilder, Shape } from "../types.js";
import { call, elementwise } from "./define.js";

/** Whether operand `a` already has the result's shape, so that it can stand in for the result. */
const keeps = (b: RuleBuilder, a: number, shape: Shape) => sameShape(b.shape(a), shape);

export const add = elementwise({
  name: "add",
  tensorCases: [{ name: "broadcasting [3,1]+[1,4]", args: [{ shape: [3, 1] }, { shape: [1, 4] }] }],
  arity: 2,
  commutative: true,
  summary: "a + b",
  js: ([a, b]) => `${a} + ${b}`,
  partials: (b) => [b.constant(1), b.constant(1)],
  domain: [
    [-3, 3],
    [-3, 3],
  ],
  examples: [{ args: [0.1, 0.2], value: 0.30000000000000004 }],
  simplify: (b, [x, y], c, shape) => {
    if (c[1] === 0 && keeps(b, x, shape)) return x;
    if (c[0] === 0 && keeps(b, y, shape)) return y;
    return undefined;
  },
});

export const sub = elementwise({
  name: "sub",
  arity: 2,
  summary: "a − b",
  js: ([a, b]) => `${a} - ${b}`,
  partials: (b) => [b.constant(1), b.constant(-1)],
  domain: [
    [-3, 3],
    [-3, 3],
  ],
  examples: [{ args: [1, 3], value: -2 }],
  simplify: (b, [x, y], c, shape) => {
    if (c[1] === 0 && keeps(b, x, shape)) return x;
    if (c[0] === 0 && keeps(b, y, shape)) return b.neg(y);
    return undefined;
  },
});

export const mul = elementwise({
  name: "mul",
  tensorCases: [{ name: "broadcasting [2,3]·[3]", args: [{ shape: [2, 3] }, { shape: [3] }] }],
  arity: 2,
  commutative: true,
  summary: "a · b",
  js: ([a, b]) => `${a} * ${b}`,
  partials: (_b, [x, y]) => [y, x],
  domain: [
    [-3, 3],
    [-3, 3],
  ],
  examples: [{ args: [-1.5, 4], value: -6 }],
  simplify: (b, [x, y], c, shape) => {
    if (c[1] === 1 && keeps(b, x, shape)) return x;
    if (c[0] === 1 && keeps(b, y, shape)) return y;
    if (c[1] === -1 && keeps(b, x, shape)) return b.neg(x);
    if (c[0] === -1 && keeps(b, y, shape)) return b.neg(y);
    return undefined;
  },
});

export const div = elementwise({
  name: "div",
  tensorCases: [{ name: "scalar/[2,2]", args: [{ shape: [] }, { shape: [2, 2], range: [0.5, 2] }] }],
  arity: 2,
  summary: "a / b",
  js: ([a, b]) => `${a} / ${b}`,
  // ∂/∂b (a/b) = −a/b² = −out/b, which reuses the output instead of squaring b.
  partials: (b, [, y], out, needs) => [needs[0] ? call(b, "reciprocal", y) : null, needs[1] ? b.neg(b.div(out, y)) : null],
  domain: [
    [-3, 3],
    [0.5, 3],
  ],
  examples: [{ args: [1, 4], value: 0.25 }],
  simplify: (b, [x, y], c, shape) => {
    if (c[1] === 1 && keeps(b, x, shape)) return x;
    if (c[0] === 1 && keeps(b, y, shape)) return b.op("reciprocal", [y]);
    return undefined;
  },
});

export const neg = elementwise({
  name: "neg",
  arity: 1,
  summary: "−a",
  js: ([a]) => `-${a}`,
  partials: (b) => [b.constant(-1)],
  domain: [[-3, 3]],
  examples: [{ args: [2], value: -2 }],
  simplify: (b, [x]) => {
    const inner = b.node(x);
    return inner.op === "neg" ? inner.args[0] : undefined;
  },
});

export const pow = elementwise({
  name: "pow",
  tensorCases: [{ name: "[2,3]^[]", args: [{ shape: [2, 3], range: [0.3, 2] }, { shape: [] }] }],
  arity: 2,
  summary: "a ^ b (a negative base is allowed with an integer exponent)",
  js: ([a, b]) => `Math.pow(${a}, ${b})`,
  partials: (b, [x, y], out, needs) => [
    // b·a^(b−1): with a constant exponent the builder folds b−1 and simplifies a^1 and a^2.
    needs[0] ? b.mul(y, b.op("pow", [x, b.sub(y, b.constant(1))])) : null,
    // a^b·log a where a > 0. For a ≤ 0 it is taken as 0: a^b is real there only at integer b (or
    // b > 0 at a = 0, where 0 is the one-sided limit), so no real derivative in b exists; a NaN here
    // would also spoil forward sweeps along other inputs (NaN·0 = NaN).
    needs[1] ? b.op("select", [b.op("gt", [x, b.constant(0)]), b.mul(out, call(b, "log", x)), b.constant(0)]) : null,
  ],
  domain: [
    [0.2, 3],
    [-2, 2],
  ],
  examples: [
    { args: [-2, 3], value: -8 },
    { args: [-2, -2], value: 0.25 },
    { args: [9, 0.5], value: 3 },
    { args: [0, 0], value: 1 },
  ],
  kinks: {
    doc: "∂/∂b is taken as 0 where a ≤ 0 (a^b is real there only for integer b, or b > 0 at a = 0).",
    cases: [
      { args: [-2, 3], partials: [12, 0] },
      { args: [0, 2], partials: [0, 0] },
    ],
  },
  simplify: (b, [x], c, shape) => {
    if (!keeps(b, x, shape)) return undefined;
    if (c[1] === 1) return x;
    if (c[1] === 2) return b.op("square", [x]);
    if (c[1] === -1) return b.op("reciprocal", [x]);
    return undefined;
  },
});

export const square = elementwise({
  name: "square",
  arity: 1,
  summary: "a²",
  js: ([a]) => `${a} * ${a}`,
  partials: (b, [x]) => [b.mul(b.constant(2), x)],
  domain: [[-3, 3]],
  examples: [{ args: [-3], value: 9 }],
});

export const sqrt = elementwise({
  name: "sqrt",
  arity: 1,
  summary: "√a",
  js: ([a]) => `Math.sqrt(${a})`,
  partials: (b, _args, out) => [b.div(b.constant(0.5), out)],
  domain: [[0.1, 4]],
  examples: [{ args: [2], value: Math.SQRT2 }],
  kinks: { doc: "At 0 the derivative is +Infinity." },
});

export const cbrt = elementwise({
  name: "cbrt",
  arity: 1,
  summary: "∛a (defined for negative a)",
  js: ([a]) => `Math.cbrt(${a})`,
  partials: (b, _args, out) => [b.div(b.constant(1 / 3), call(b, "square", out))],
  domain: [[0.2, 4]],
  examples: [{ args: [-27], value: -3 }],
  kinks: { doc: "At 0 the derivative is +Infinity." },
});

export const reciprocal = elementwise({
  name: "reciprocal",
  arity: 1,
  summary: "1 / a",
  js: ([a]) => `1 / ${a}`,
  partials: (b, _args, out) => [b.neg(call(b, "square", out))],
  domain: [[0.3, 3]],
  examples: [{ args: [4], value: 0.25 }],
});
