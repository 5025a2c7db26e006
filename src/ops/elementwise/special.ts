import { call, elementwise } from "./define.js";

export const sigmoid = elementwise({
  name: "sigmoid",
  arity: 1,
  summary: "1 / (1 + e^−a), stable for large |a|",
  js: ([a]) => `H.sigmoid(${a})`,
  partials: (b, _args, out) => [b.mul(out, b.sub(b.constant(1), out))],
  domain: [[-5, 5]],
  examples: [
    { args: [0], value: 0.5 },
    { args: [-800], value: 0 },
    { args: [800], value: 1 },
    { args: [-40], value: 4.248354255291589e-18 },
  ],
});

export const softplus = elementwise({
  name: "softplus",
  arity: 1,
  summary: "log(1 + eᵃ), stable for large |a|",
  js: ([a]) => `H.softplus(${a})`,
  partials: (b, [x]) => [call(b, "sigmoid", x)],
  domain: [[-5, 5]],
  examples: [
    { args: [0], value: Math.LN2 },
    { args: [1000], value: 1000 },
    { args: [-50], value: 1.9287498479639178e-22 },
  ],
});

export const erf = elementwise({
  name: "erf",
  arity: 1,
  summary: "error function",
  js: ([a]) => `H.erf(${a})`,
  partials: (b, [x]) => [b.mul(b.constant(2 / Math.sqrt(Math.PI)), call(b, "exp", b.neg(call(b, "square", x))))],
  domain: [[-2.5, 2.5]],
  examples: [
    { args: [0.5], value: 0.5204998778130465 },
    { args: [0], value: 0 },
  ],
});
