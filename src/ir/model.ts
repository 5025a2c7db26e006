import { AdjointError, invalid } from "../errors.js";
import { checkName, record } from "../names.js";
import type { Shape } from "../ops/types.js";
import { formatShape, sizeOf } from "../tensor/shape.js";
import { functionBudget } from "./budget.js";
import { GraphBuilder } from "./builder.js";
import type { Graph } from "./graph.js";

/**
 * Sequential models (schema: docs/model.schema.json). A model compiles to the same graph IR as any
 * function: its inputs are the data `x`, the targets `y` and one input per parameter, named
 * `<layer>.weight`, `<layer>.bias` (or `.gamma`, `.beta`); its output is the loss.
 */
export interface ModelDefinition {
  /** Shape of one example, without the batch axis: [784] for vectors, [C, H, W] for images. */
  readonly input: readonly number[];
  readonly layers: readonly LayerDefinition[];
  /** softmax_cross_entropy (integer labels [N] or targets [N, C]), mse, or binary_cross_entropy_with_logits. */
  readonly loss: LossName | { readonly type: LossName };
  /** "int" for integer class labels (the default for softmax_cross_entropy), "float" for targets. */
  readonly targets?: "int" | "float";
}

export type LossName = "softmax_cross_entropy" | "mse" | "binary_cross_entropy_with_logits";

export type LayerDefinition =
  | { readonly type: "dense"; readonly units: number; readonly bias?: boolean; readonly name?: string }
  | {
      readonly type: "conv2d";
      readonly filters: number;
      readonly kernel: number | readonly [number, number];
      readonly stride?: number | readonly [number, number];
      readonly padding?: number | readonly [number, number];
      readonly dilation?: number | readonly [number, number];
      readonly bias?: boolean;
      readonly name?: string;
    }
  | {
      readonly type: "max_pool2d" | "avg_pool2d";
      readonly kernel: number | readonly [number, number];
      readonly stride?: number | readonly [number, number];
      readonly padding?: number | readonly [number, number];
      /** avg_pool2d: padding counts in each window's divisor (torch's count_include_pad; default false). */
      readonly countIncludePad?: boolean;
      /** Round the output extent up (torch's ceil_mode; default false). */
      readonly ceilMode?: boolean;
      readonly name?: string;
    }
  | { readonly type: "flatten" | "relu" | "tanh" | "sigmoid" | "gelu" | "softmax"; readonly name?: string }
  | { readonly type: "layer_norm"; readonly eps?: number; readonly name?: string };

const ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "softmax"] as const;
const LOSSES: readonly LossName[] = ["softmax_cross_entropy", "mse", "binary_cross_entropy_with_logits"];
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ParameterSpec {
  readonly name: string;
  readonly shape: Shape;
  /** Deterministic initialisation: Glorot-uniform weights, zero biases, unit gains. */
  readonly init:
    | { readonly kind: "glorot_uniform"; readonly fanIn: number; readonly fanOut: number }
    | { readonly kind: "zeros" }
    | { readonly kind: "ones" };
}

/**
 * The model format's data inputs: the examples, batch first, and their targets. Every other input
 * is a parameter.
 */
export const MODEL_DATA = { examples: "x", targets: "y" } as const;

export interface CompiledModel {
  readonly graph: Graph;
  /** The parameters, in input order: the default `wrt` of a model. */
  readonly parameters: readonly ParameterSpec[];
  readonly data: { readonly x: Shape; readonly y: Shape; readonly yType: "int" | "float" };
}

function lossName(model: ModelDefinition): LossName {
  const name = typeof model.loss === "string" ? model.loss : model.loss?.type;
  if (!LOSSES.includes(name as LossName)) throw invalid(`model.loss must be one of ${LOSSES.join(", ")}`, { field: "model.loss" });
  return name as LossName;
}

function pair(v: unknown, field: string, fallback: number, min: number): [number, number] {
  if (v === undefined) return [fallback, fallback];
  const list = typeof v === "number" ? [v, v] : v;
  if (!Array.isArray(list) || list.length !== 2 || !list.every((x) => Number.isInteger(x) && x >= min)) {
    throw invalid(`${field} must be an integer ≥ ${min} or a pair of them`, { field });
  }
  return [list[0], list[1]];
}

function positiveInt(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw invalid(`${field} must be a positive integer`, { field });
  return v as number;
}

type AddParameter = (name: string, shape: Shape, init: ParameterSpec["init"]) => number;

/** What a layer builds with: the builder, its own name and field, the shape it receives, and its parameters. */
interface LayerContext {
  readonly b: GraphBuilder;
  readonly name: string;
  readonly field: string;
  readonly shape: Shape;
  readonly param: AddParameter;
}

type LayerOf<T extends LayerDefinition["type"]> = Extract<LayerDefinition, { readonly type: T }>;

/**
 * Builds the model's loss graph for a batch of `batch` examples. Errors name the layer (by index and
 * name) and the shapes involved.
 */
export function compileModel(model: ModelDefinition, batch: number, maxNodes?: number): CompiledModel {
  if (typeof model !== "object" || model === null) throw invalid("model must be an object with input, layers and loss", { field: "model" });
  if (!Array.isArray(model.input) || !model.input.every((d) => Number.isInteger(d) && d > 0)) {
    throw invalid("model.input must be the shape of one example, e.g. [784] or [1, 28, 28]", { field: "model.input" });
  }
  if (!Array.isArray(model.layers)) throw invalid("model.layers must be an array", { field: "model.layers" });
  const loss = lossName(model);
  const b = new GraphBuilder(functionBudget(maxNodes));
  const xShape = [batch, ...model.input];
  const x = b.input(MODEL_DATA.examples, xShape);
  const parameters: ParameterSpec[] = [];
  const used = new Set<string>(Object.values(MODEL_DATA));
  const param: AddParameter = (name, shape, init) => {
    parameters.push({ name, shape, init });
    return b.input(name, shape);
  };

  let h = x;
  model.layers.forEach((layer, index) => {
    h = compileLayer(b, layer, index, h, used, param);
  });

  const yType = model.targets ?? (loss === "softmax_cross_entropy" ? "int" : "float");
  const { yShape, lossNode } = compileLoss(b, loss, h, yType);
  return { graph: b.build([{ name: "loss", node: lossNode }]), parameters, data: { x: xShape, y: yShape, yType } };
}

/** Names and builds one layer on `h`; an invalid argument from it is reported against the layer. */
function compileLayer(b: GraphBuilder, layer: LayerDefinition, index: number, h: number, used: Set<string>, param: AddParameter): number {
  const field = `model.layers[${index}]`;
  if (typeof layer !== "object" || layer === null) throw invalid(`${field} must be an object with a type`, { field });
  const name = layer.name ?? `${layer.type}_${index}`;
  checkName(name, `${field}.name`);
  if (!NAME.test(name) || used.has(name))
    throw invalid(`${field}: layer name ${name} is not a unique identifier`, { field: `${field}.name` });
  used.add(name);
  const ctx: LayerContext = { b, name, field, shape: b.shape(h), param };
  try {
    return applyLayer(layer, h, ctx);
  } catch (e) {
    if (e instanceof AdjointError && e.kind === "invalid_argument" && !e.message.startsWith(field)) {
      throw invalid(`${field} (${name}): ${e.message}`, { ...e.location, field: e.location.field ?? field });
    }
    throw e;
  }
}

function applyLayer(layer: LayerDefinition, h: number, ctx: LayerContext): number {
  switch (layer.type) {
    case "dense":
      return dense(layer, h, ctx);
    case "conv2d":
      return conv2d(layer, h, ctx);
    case "max_pool2d":
    case "avg_pool2d":
      return pool2d(layer, h, ctx);
    case "flatten":
      return ctx.b.op("flatten", [h]);
    case "layer_norm":
      return layerNorm(layer, h, ctx);
    default:
      return activation(layer, h, ctx);
  }
}

function dense(layer: LayerOf<"dense">, h: number, { b, name, field, shape, param }: LayerContext): number {
  if (shape.length !== 2) throw invalid(`dense needs [batch, features], got ${formatShape(shape)}; add a flatten layer first`);
  const units = positiveInt(layer.units, `${field}.units`);
  const w = param(`${name}.weight`, [shape[1], units], { kind: "glorot_uniform", fanIn: shape[1], fanOut: units });
  const out = b.op("matmul", [h, w]);
  return layer.bias !== false ? b.add(out, param(`${name}.bias`, [units], { kind: "zeros" })) : out;
}

function conv2d(layer: LayerOf<"conv2d">, h: number, { b, name, field, shape, param }: LayerContext): number {
  if (shape.length !== 4) throw invalid(`conv2d needs [batch, channels, height, width], got ${formatShape(shape)}`);
  const filters = positiveInt(layer.filters, `${field}.filters`);
  const [kh, kw] = pair(layer.kernel, `${field}.kernel`, 0, 1);
  const attrs = {
    stride: pair(layer.stride, `${field}.stride`, 1, 1),
    padding: pair(layer.padding, `${field}.padding`, 0, 0),
    dilation: pair(layer.dilation, `${field}.dilation`, 1, 1),
  };
  const fanIn = shape[1] * kh * kw;
  const w = param(`${name}.weight`, [filters, shape[1], kh, kw], { kind: "glorot_uniform", fanIn, fanOut: filters * kh * kw });
  const out = b.op("conv2d", [h, w], attrs);
  if (layer.bias === false) return out;
  const bias = param(`${name}.bias`, [filters], { kind: "zeros" });
  return b.add(out, b.op("reshape", [bias], { shape: [filters, 1, 1] }));
}

function pool2d(layer: LayerOf<"max_pool2d" | "avg_pool2d">, h: number, { b, field }: LayerContext): number {
  const kernel = pair(layer.kernel, `${field}.kernel`, 0, 1);
  const flag = (v: unknown, name: string) => {
    if (v !== undefined && typeof v !== "boolean") throw invalid(`${field}.${name} must be a boolean`, { field: `${field}.${name}` });
    return v === true;
  };
  const ceil = flag(layer.ceilMode, "ceilMode");
  const includePad = flag(layer.countIncludePad, "countIncludePad");
  if (includePad && layer.type !== "avg_pool2d") {
    throw invalid(`${field}.countIncludePad applies to avg_pool2d only`, { field: `${field}.countIncludePad` });
  }
  return b.op(layer.type, [h], {
    kernel,
    stride: pair(layer.stride, `${field}.stride`, kernel[0], 1),
    padding: pair(layer.padding, `${field}.padding`, 0, 0),
    // Set only when asked for, so a model without them keeps its content hash.
    ...(ceil ? { ceil_mode: true } : {}),
    ...(includePad ? { count_include_pad: true } : {}),
  });
}

function layerNorm(layer: LayerOf<"layer_norm">, h: number, { b, name, shape, param }: LayerContext): number {
  const features = shape[shape.length - 1];
  const gamma = param(`${name}.gamma`, [features], { kind: "ones" });
  const beta = param(`${name}.beta`, [features], { kind: "zeros" });
  return b.op("layer_norm", [h, gamma, beta], layer.eps === undefined ? undefined : { eps: layer.eps });
}

/** An elementwise activation; any other type is not a layer (the definition comes from a client). */
function activation(layer: { readonly type: string }, h: number, { b, field }: LayerContext): number {
  if (!(ACTIVATIONS as readonly string[]).includes(layer.type)) {
    throw invalid(
      `unknown layer type ${String(layer.type)}; use dense, conv2d, max_pool2d, avg_pool2d, flatten, layer_norm, ${ACTIVATIONS.join(", ")}`,
      { field: `${field}.type` },
    );
  }
  return b.op(layer.type, [h]);
}

/** The targets input `y`, shaped to match the model's output `h`, and the loss between them. */
function compileLoss(b: GraphBuilder, loss: LossName, h: number, yType: "int" | "float"): { yShape: Shape; lossNode: number } {
  const out = b.shape(h);
  const yShape = yType === "int" ? out.slice(0, -1) : [...out];
  const y = b.input(MODEL_DATA.targets, yShape, yType === "int" ? "int" : "float");
  try {
    return { yShape, lossNode: b.op(loss, [h, y]) };
  } catch (e) {
    if (e instanceof AdjointError && e.kind === "invalid_argument")
      throw invalid(`model.loss ${loss}: ${e.message}`, { field: "model.loss" });
    throw e;
  }
}

/**
 * Deterministic parameters from a seed, by the linear congruential generator of the benchmark
 * workloads (s ← 1664525·s + 1013904223 mod 2³², value (s >>> 8)/2²⁴), drawn in parameter order.
 */
export function initializeParameters(
  parameters: readonly ParameterSpec[],
  seed: number,
): Record<string, { shape: number[]; data: Float64Array }> {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    return (s >>> 8) / 16777216;
  };
  const out = record<{ shape: number[]; data: Float64Array }>();
  for (const p of parameters) {
    const data = new Float64Array(sizeOf(p.shape));
    if (p.init.kind === "glorot_uniform") {
      const limit = Math.sqrt(6 / (p.init.fanIn + p.init.fanOut));
      for (let i = 0; i < data.length; i++) data[i] = (2 * next() - 1) * limit;
    } else if (p.init.kind === "ones") data.fill(1);
    out[p.name] = { shape: [...p.shape], data };
  }
  return out;
}
