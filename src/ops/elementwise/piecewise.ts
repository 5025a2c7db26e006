import type { MaybeNode, RuleBuilder } from "../types.js";
import { call, elementwise } from "./define.js";

export const abs = elementwise({
  name: "abs",
  arity: 1,
  summary: "|a|",
  js: ([a]) => `Math.abs(${a})`,
  partials: (b, [x]) => [call(b, "sign", x)],
  domain: [[0.2, 3]],
  examples: [{ args: [-2.5], value: 2.5 }],
  kinks: { doc: "abs′(0) = 0 (sign(0) = 0).", cases: [{ args: [0], partials: [0] }] },
  secondOrder: "0 everywhere (the derivative of sign), including at 0.",
});

export const sign = elementwise({
  name: "sign",
  arity: 1,
  summary: "−1, 0 or 1",
  js: ([a]) => `H.sign(${a})`,
  partials: () => [null],
  differentiable: [false],
  domain: [[-3, 3]],
  examples: [
    { args: [-0.1], value: -1 },
    { args: [0], value: 0 },
  ],
  kinks: { doc: "Derivative 0 everywhere, the jump at 0 included." },
});

export const relu = elementwise({
  name: "relu",
  arity: 1,
  summary: "max(a, 0)",
  js: ([a]) => `Math.max(${a}, 0)`,
  partials: (b, [x]) => [b.op("gt", [x, b.constant(0)])],
  domain: [[0.1, 3]],
  examples: [
    { args: [-2], value: 0 },
    { args: [2], value: 2 },
  ],
  kinks: { doc: "relu′(0) = 0.", cases: [{ args: [0], partials: [0] }] },
  secondOrder: "0 everywhere, including at 0.",
});

/** ∂max(a,b)/∂a = [a > b] + ½[a = b]: at a tie the gradient is split evenly between the operands. */
function extremumPartials(b: RuleBuilder, x: number, y: number, needs: readonly boolean[], winner: "gt" | "lt"): MaybeNode[] {
  const half = () => b.mul(b.constant(0.5), b.op("eq", [x, y]));
  return [needs[0] ? b.add(b.op(winner, [x, y]), half()) : null, needs[1] ? b.add(b.op(winner, [y, x]), half()) : null];
}

export const max = elementwise({
  name: "max",
  tensorCases: [{ name: "broadcasting", args: [{ shape: [3, 2] }, { shape: [2] }] }],
  arity: 2,
  commutative: true,
  summary: "larger of a and b",
  aliases: ["maximum"],
  byArity: { 1: "amax" },
  js: ([a, b]) => `Math.max(${a}, ${b})`,
  partials: (b, [x, y], _out, needs) => extremumPartials(b, x, y, needs, "gt"),
  domain: [
    [-3, 3],
    [-3, 3],
  ],
  examples: [{ args: [1, 2], value: 2 }],
  kinks: { doc: "At a tie a = b the gradient is split: ½ to each operand.", cases: [{ args: [1, 1], partials: [0.5, 0.5] }] },
  secondOrder: "0 everywhere, ties included.",
});

export const min = elementwise({
  name: "min",
  arity: 2,
  commutative: true,
  summary: "smaller of a and b",
  aliases: ["minimum"],
  byArity: { 1: "amin" },
  js: ([a, b]) => `Math.min(${a}, ${b})`,
  partials: (b, [x, y], _out, needs) => extremumPartials(b, x, y, needs, "lt"),
  domain: [
    [-3, 3],
    [-3, 3],
  ],
  examples: [{ args: [1, 2], value: 1 }],
  kinks: { doc: "At a tie a = b the gradient is split: ½ to each operand.", cases: [{ args: [-1, -1], partials: [0.5, 0.5] }] },
  secondOrder: "0 everywhere, ties included.",
});

function comparison(name: string, symbol: string, summary: string, examples: { args: number[]; value: number }[]) {
  return elementwise({
    name,
    arity: 2,
    commutative: symbol === "===" || symbol === "!==",
    summary: `${summary}: 1 where true, else 0`,
    js: ([a, b]) => `(${a} ${symbol} ${b} ? 1 : 0)`,
    partials: () => [null, null],
    differentiable: [false, false],
    domain: [
      [-3, 3],
      [-3, 3],
    ],
    examples,
    kinks: { doc: "Piecewise constant: derivative 0 everywhere." },
  });
}

export const lt = comparison("lt", "<", "a < b", [
  { args: [1, 2], value: 1 },
  { args: [2, 2], value: 0 },
]);
export const le = comparison("le", "<=", "a ≤ b", [
  { args: [2, 2], value: 1 },
  { args: [3, 2], value: 0 },
]);
export const gt = comparison("gt", ">", "a > b", [
  { args: [3, 2], value: 1 },
  { args: [2, 2], value: 0 },
]);
export const ge = comparison("ge", ">=", "a ≥ b", [
  { args: [2, 2], value: 1 },
  { args: [1, 2], value: 0 },
]);
export const eq = comparison("eq", "===", "a = b", [
  { args: [2, 2], value: 1 },
  { args: [1, 2], value: 0 },
]);
export const ne = comparison("ne", "!==", "a ≠ b", [
  { args: [1, 2], value: 1 },
  { args: [2, 2], value: 0 },
]);

export const select = elementwise({
  name: "select",
  operands: "c (condition), a (where c ≠ 0), b (elsewhere)",
  tensorCases: [{ name: "broadcasting", args: [{ shape: [2, 3] }, { shape: [3] }, { shape: [2, 1] }] }],
  arity: 3,
  summary: "where(c, a, b): a where c ≠ 0, else b",
  aliases: ["where"],
  js: ([c, a, b]) => `(${c} !== 0 ? ${a} : ${b})`,
  // Routing instead of multiplying by a 0/1 mask keeps a NaN or ∞ in the branch not taken out of the
  // result; the tangent is routed the same way, select(c, ȧ, ḃ).
  linear: "linear",
  vjp: (b, [cond], _out, ct, needs) => {
    const zero = b.constant(0);
    return [null, needs[1] ? b.op("select", [cond, ct, zero]) : null, needs[2] ? b.op("select", [cond, zero, ct]) : null];
  },
  differentiable: [false, true, true],
  domain: [
    [-1, 1],
    [-3, 3],
    [-3, 3],
  ],
  examples: [
    { args: [1, 2, 3], value: 2 },
    { args: [0, 2, 3], value: 3 },
  ],
  kinks: { doc: "The derivative flows to the branch taken; none flows to the condition." },
});

export const stopGradient = elementwise({
  name: "stop_gradient",
  arity: 1,
  summary: "a, with no derivative flowing through it",
  js: ([a]) => `${a}`,
  partials: () => [null],
  differentiable: [false],
  domain: [[-3, 3]],
  examples: [{ args: [1.5], value: 1.5 }],
});
