import { encodeRequest } from "./families.js";

/** The worked example: the cheap request whose latency the abuse runs watch, with its closed form. */
const E = Math.exp(-2.125);
export const WORKED_EXPECTED = { value: 2 * E, x1: -3 * E, x2: -E };

export const W1_HTTP_BODY = JSON.stringify({ function: { expression: "x1*exp(-0.5*(x1^2+x2^2))" }, point: { x1: 2, x2: 0.5 } });
export const W1_GRPC_REQUEST = encodeRequest({
  function: { source: { case: "expression", value: "x1*exp(-0.5*(x1^2+x2^2))" } },
  point: { values: { x1: 2, x2: 0.5 } },
});

/** undefined when a REST answer to the worked example is right to a few units in the last place. */
export function workedExampleError(a: { value?: number; gradient?: { x1?: number; x2?: number } }): string | undefined {
  const near = (got: number | undefined, want: number) => got !== undefined && Math.abs(got - want) <= 4 * Number.EPSILON * Math.abs(want);
  if (near(a.value, WORKED_EXPECTED.value) && near(a.gradient?.x1, WORKED_EXPECTED.x1) && near(a.gradient?.x2, WORKED_EXPECTED.x2))
    return undefined;
  return `wrong worked example: ${JSON.stringify(a)}`;
}
