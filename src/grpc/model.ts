import type { LayerDefinition, ModelDefinition } from "../ir/model.js";
import type { Layer, Model } from "./gen/adjoint/v1/adjoint_pb.js";

/**
 * The typed Model message as the service's model definition (the JSON form of docs/model.schema.json),
 * so both transports compile and validate a model in one place (src/ir/model.ts) and report the same
 * errors. Proto3 cannot tell an unset scalar from its zero, so a zero (units, filters) or an empty
 * list (kernel, ...) stands for "not given": the compiler then applies the default or names the
 * missing field, exactly as for a JSON layer without it.
 */
export function modelDefinition(m: Model): ModelDefinition {
  return {
    input: [...m.input],
    layers: m.layers.map(layerDefinition),
    loss: m.loss as ModelDefinition["loss"],
    ...(m.targets ? { targets: m.targets as ModelDefinition["targets"] } : {}),
  };
}

/** One value for both axes as a number, two as a pair; any other count is passed on for the compiler to refuse. */
function pair(v: readonly number[]): number | readonly number[] | undefined {
  if (v.length === 0) return undefined;
  return v.length === 1 ? v[0] : [...v];
}

function layerDefinition(l: Layer): LayerDefinition {
  const fields: Record<string, unknown> = {
    type: l.type,
    name: l.name || undefined,
    units: l.units || undefined,
    filters: l.filters || undefined,
    kernel: pair(l.kernel),
    stride: pair(l.stride),
    padding: pair(l.padding),
    dilation: pair(l.dilation),
    bias: l.bias,
    eps: l.eps,
    countIncludePad: l.countIncludePad,
    ceilMode: l.ceilMode,
  };
  for (const k of Object.keys(fields)) if (fields[k] === undefined) delete fields[k];
  return fields as unknown as LayerDefinition;
}
