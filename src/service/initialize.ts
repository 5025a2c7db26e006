import { exhausted, invalid } from "../errors.js";
import { initializeParameters } from "../ir/model.js";
import { record } from "../names.js";
import { sizeOf } from "../tensor/shape.js";
import type { ServiceConfig } from "./config.js";
import type { FunctionEntry } from "./functions.js";
import type { DifferentiateInput, TensorObject } from "./types.js";

type Parameters = ReturnType<typeof initializeParameters>;

/** The numbers `initialize` adds to an answer: the model's parameters, when the request draws them. */
export function drawnElements(entry: FunctionEntry, input: DifferentiateInput): number {
  return input.initialize !== undefined && entry.model ? entry.model.parameters.reduce((n, p) => n + sizeOf(p.shape), 0) : 0;
}

/**
 * A model evaluated at parameters drawn from a seed (docs/functions.md): the same seed gives the same
 * parameters on every replica. Gives the request with the drawn parameters joined to its point (and
 * `initialize` dropped), and the parameters, which the answer carries so the client can go on from there.
 */
export function withDrawnParameters(
  entry: FunctionEntry,
  input: DifferentiateInput,
  limits: Pick<ServiceConfig, "maxTensorElements">,
): { input: DifferentiateInput; parameters: Parameters } {
  const seed = input.initialize?.seed;
  if (!entry.model) throw invalid("initialize: only a model's parameters can be initialised", { field: "initialize" });
  if (!Number.isInteger(seed) || (seed as number) < 0 || (seed as number) > 0xffffffff) {
    throw invalid("initialize.seed must be an integer from 0 to 4294967295", { field: "initialize.seed" });
  }
  if (input.point === undefined)
    throw invalid("initialize: give one point (x and y); batches of points cannot share drawn parameters", { field: "point" });
  // Drawn on the event loop, so counted first: the point they join is bound by the same limit.
  const elements = drawnElements(entry, input);
  if (elements > limits.maxTensorElements) {
    throw exhausted(
      `initialize: the model has ${elements} parameter elements to draw; the limit is ${limits.maxTensorElements} (ADJOINT_MAX_TENSOR_ELEMENTS)`,
      { field: "initialize" },
    );
  }
  const parameters = initializeParameters(entry.model.parameters, seed as number);
  for (const name of Object.keys(input.point)) {
    if (Object.hasOwn(parameters, name))
      throw invalid(`point.${name}: with initialize, the parameters come from the seed; leave ${name} out`, { field: `point.${name}` });
  }
  const { initialize: _seed, ...rest } = input;
  const drawn = record<TensorObject>();
  for (const [name, t] of Object.entries(parameters)) {
    drawn[name] = { shape: t.shape, dtype: "float64", bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
  }
  return { input: { ...rest, point: Object.assign(record(), input.point, drawn) }, parameters };
}
