import { create, type DescEnum, type MessageInitShape } from "@bufbuild/protobuf";
import { mapSections, SECTION_NAMES, SECTIONS } from "../engine/sections.js";
import type { Value } from "../engine/values.js";
import { record, recordOf } from "../names.js";
import type { OpsManifest } from "../service/manifest.js";
import { toLittleEndianBytes } from "../service/tensor.js";
import type {
  ColumnMap,
  ColumnsResult,
  DifferentiateInput,
  DifferentiateOutput,
  ElementDType,
  FunctionInfo,
  FunctionSpec,
  InputDecl,
  NamedValues,
  ResultRow,
  TensorValue,
  ValueMap,
} from "../service/types.js";
import {
  CheckEntrySchema,
  type Check as CheckMsg,
  CheckSchema,
  type DifferentiateRequest,
  type DifferentiateResponse,
  DifferentiateResponseSchema,
  ElementType,
  type FunctionInfo as FunctionInfoMsg,
  FunctionInfoSchema,
  type Function as FunctionMsg,
  type Graph,
  type GraphArg,
  GraphArgSchema,
  type InputSpec,
  JacobianMethodSchema,
  type ListOpsResponse,
  ListOpsResponseSchema,
  ModeSchema,
  NonFiniteSchema,
  OpInfoSchema,
  type Point,
  Precision,
  type Result,
  ResultSchema,
  type Tensor,
  TensorMapSchema,
  TensorSchema,
  TraceRowSchema,
  TraceSchema,
  TraceSeedSchema,
} from "./gen/adjoint/v1/adjoint_pb.js";
import { modelDefinition } from "./model.js";
import { sparseResult } from "./sparse.js";

/**
 * Messages to the service's neutral request and back: wire format only. Tensors are handed over
 * undecoded ({shape, data} or {shape, dtype, bytes}); the service decodes them like JSON ones.
 */

/** An enum value's name as the JSON API writes it: MODE_FORWARD → "forward"; the unspecified value → undefined. */
function enumName(desc: DescEnum, value: number): string | undefined {
  if (value === 0) return undefined;
  return desc.values.find((v) => v.number === value)?.localName.toLowerCase() ?? `unknown(${value})`;
}

/** The raw bytes' element type; unknown values are handed on by name for the service to refuse. */
const RAW_DTYPE: Readonly<Record<number, ElementDType>> = {
  [ElementType.UNSPECIFIED]: "float64",
  [ElementType.FLOAT64]: "float64",
  [ElementType.FLOAT32]: "float32",
  [ElementType.INT32]: "int32",
  [ElementType.INT64]: "int64",
};

export function tensorValue(t: Tensor): TensorValue {
  if (t.raw.byteLength > 0) {
    const dtype = RAW_DTYPE[t.dtype] ?? (`unknown(${t.dtype})` as ElementDType);
    return { shape: t.shape, dtype, bytes: t.raw };
  }
  if (t.shape.length === 0 && t.values.length === 1) return t.values[0];
  return { shape: t.shape, data: t.values };
}

/** Map fields arrive as ordinary objects whose keys are the client's: only their own entries are read. */
export function pointValues(p: Point): NamedValues {
  const out = recordOf<TensorValue>(Object.entries(p.values));
  for (const [name, t] of Object.entries(p.tensors)) out[name] = tensorValue(t);
  return out;
}

function namedTensors(m: Record<string, Tensor>): NamedValues {
  const out = record<TensorValue>();
  for (const [name, t] of Object.entries(m)) out[name] = tensorValue(t);
  return out;
}

function inputDecl(s: InputSpec): InputDecl {
  return {
    name: s.name,
    ...(s.shape.length ? { shape: s.shape } : {}),
    ...(s.dtype ? { dtype: s.dtype as InputDecl["dtype"] } : {}),
  };
}

function graphJson(g: Graph): unknown {
  return {
    inputs: g.inputs.map(inputDecl),
    nodes: g.nodes.map((n) => ({
      id: n.id,
      op: n.op,
      ...(n.args.length ? { args: n.args.map((a) => a.arg.value) } : {}),
      ...(n.attrs ? { attrs: n.attrs } : {}),
      ...(n.value ? { value: tensorValue(n.value) } : {}),
    })),
    outputs: g.outputs.map((o) => ({ name: o.name, node: o.node })),
    ...(g.description ? { description: g.description } : {}),
  };
}

export function functionSpec(f: FunctionMsg | undefined): FunctionSpec | undefined {
  if (f === undefined) return undefined;
  const inputs = f.inputs.length ? { inputs: f.inputs.map(inputDecl) } : {};
  switch (f.source.case) {
    case "expression":
      return { expression: f.source.value, ...inputs };
    case "expressions":
      return { expressions: recordOf(f.source.value.outputs.map((o) => [o.name, o.text])), ...inputs };
    case "graph":
      return { graph: graphJson(f.source.value) };
    case "model":
      return { model: f.source.value, ...(f.batch ? { batch: f.batch } : {}) };
    case "sequentialModel":
      return { model: modelDefinition(f.source.value), ...(f.batch ? { batch: f.batch } : {}) };
    case "id":
      return { id: f.source.value };
    default:
      return {};
  }
}

export function differentiateInput(r: DifferentiateRequest): DifferentiateInput {
  const precision = r.precision === Precision.FLOAT32 ? "float32" : r.precision === Precision.FLOAT64 ? "float64" : undefined;
  const columns = Object.keys(r.columns).length ? namedTensors(r.columns) : undefined;
  return {
    function: functionSpec(r.function),
    point: r.point ? pointValues(r.point) : undefined,
    points: r.points.length ? r.points.map(pointValues) : undefined,
    columns,
    mode: enumName(ModeSchema, r.mode),
    wrt: r.wrt.length ? r.wrt : undefined,
    tangent: r.tangent ? pointValues(r.tangent) : undefined,
    cotangent: r.cotangent ? pointValues(r.cotangent) : undefined,
    trace: r.trace,
    allowNonFinite: r.allowNonFinite,
    precision,
    ...(r.order !== undefined ? { order: r.order } : {}),
    ...(r.method !== 0 ? { method: enumName(JacobianMethodSchema, r.method) as "forward" | "reverse" } : {}),
    ...(r.initialize ? { initialize: { seed: r.initialize.seed } } : {}),
    ...(r.sparse ? { sparse: true } : {}),
  };
}

/**
 * A result as a Tensor message: a scalar as one value, a tensor as raw little-endian float64 bytes
 * (the fast form: a view of the result's memory, not a copy).
 */
function tensorMessage(v: Value): Tensor {
  if (typeof v === "number") return create(TensorSchema, { values: [v] });
  const data = v.data instanceof Float64Array ? v.data : Float64Array.from(v.data);
  return create(TensorSchema, { shape: [...v.shape], dtype: ElementType.FLOAT64, raw: toLittleEndianBytes(data) });
}

export function tensorMap(m: ValueMap | ColumnMap | undefined): Record<string, Tensor> {
  const out = record<Tensor>();
  if (m) for (const k of Object.keys(m)) out[k] = tensorMessage(m[k]);
  return out;
}

/** A trace row's derivative: one value, or (forward-mode gradient) one per sweep, by the input swept. */
function isValue(v: unknown): v is Value {
  return typeof v === "number" || (typeof v === "object" && v !== null && "shape" in v && "data" in v);
}

function graphArg(a: string | number): GraphArg {
  return create(GraphArgSchema, { arg: typeof a === "number" ? { case: "number", value: a } : { case: "id", value: a } });
}

/**
 * The numeric sections of a point's answer, or of a batch's by columns (each tensor's first axis the
 * point), as the engine's section table lays them out: maps of tensors, maps of maps, single tensors.
 */
function sections(r: ResultRow | ColumnsResult) {
  const converted = mapSections<Value, Tensor>(r, tensorMessage) as Record<string, unknown>;
  const out: Record<string, unknown> = { method: r.method ?? "", partials: [...(r.partials ?? [])] };
  for (const s of SECTION_NAMES) {
    const v = converted[s];
    if (v === undefined) continue;
    out[s] =
      SECTIONS[s] === "nested"
        ? mapValues(v as Record<string, Record<string, Tensor>>, (tensors) => create(TensorMapSchema, { tensors }))
        : v;
  }
  const sparse = sparseResult(r, converted);
  for (const s of sparse.drop) delete out[s];
  Object.assign(out, sparse.fields);
  // REST's single-output shortcut: the one output again as `value` (the same message, not a copy).
  const outputs = converted.outputs as Record<string, Tensor> | undefined;
  const names = outputs === undefined ? [] : Object.keys(outputs);
  if (names.length === 1) out.value = (outputs as Record<string, Tensor>)[names[0]];
  return out as MessageInitShape<typeof ResultSchema>;
}

function mapValues<T, U>(m: Record<string, T>, f: (v: T) => U): Record<string, U> {
  const out = record<U>();
  for (const k of Object.keys(m)) out[k] = f(m[k]);
  return out;
}

function checkMessage(c: NonNullable<ResultRow["check"]>): CheckMsg {
  return create(CheckSchema, {
    passed: c.passed,
    rule: c.rule,
    inputs: mapValues(c.inputs, (e) => create(CheckEntrySchema, e)),
  });
}

function result(row: ResultRow): Result {
  const trace = row.trace;
  return create(ResultSchema, {
    ...sections(row),
    trace: trace
      ? create(TraceSchema, {
          mode: trace.mode,
          rows: trace.rows.map((r) =>
            create(TraceRowSchema, {
              id: r.id,
              op: r.op,
              args: r.args.map(graphArg),
              attrs: r.attrs as never,
              value: tensorMessage(r.value as Value),
              adjoint: r.adjoint === undefined ? undefined : tensorMessage(r.adjoint as Value),
              tangent: isValue(r.tangent) ? tensorMessage(r.tangent) : undefined,
              tangents: r.tangent !== undefined && !isValue(r.tangent) ? tensorMap(r.tangent as ValueMap) : {},
              output: r.output ?? "",
            }),
          ),
          seed: trace.seed
            ? create(TraceSeedSchema, { id: trace.seed.id, adjoint: tensorMessage(trace.seed.adjoint as Value) })
            : undefined,
        })
      : undefined,
    nonFinite: row.nonFinite ? create(NonFiniteSchema, row.nonFinite) : undefined,
    check: row.check ? checkMessage(row.check) : undefined,
  });
}

export function differentiateResponse(out: DifferentiateOutput, sequence = 0): DifferentiateResponse {
  return create(DifferentiateResponseSchema, {
    id: out.id,
    mode: out.mode,
    result: out.result ? result(out.result) : undefined,
    results: out.results?.map(result) ?? [],
    columns: out.columns ? create(ResultSchema, sections(out.columns)) : undefined,
    nonFinite: out.columns?.nonFinite?.map(({ index, ...report }) => create(NonFiniteSchema, { ...report, point: index })) ?? [],
    sequence: BigInt(sequence),
    parameters: tensorMap(out.parameters),
  });
}

export function functionInfo(info: FunctionInfo): FunctionInfoMsg {
  return create(FunctionInfoSchema, {
    id: info.id,
    inputs: info.inputs.map((s) => ({ name: s.name, shape: [...s.shape], dtype: s.dtype })),
    outputs: info.outputs.map((s) => ({ name: s.name, shape: [...s.shape], dtype: s.dtype })),
    nodeCount: info.nodeCount,
    opCount: info.opCount,
  });
}

export function listOpsResponse(m: OpsManifest): ListOpsResponse {
  return create(ListOpsResponseSchema, {
    modes: m.modes.map((x) => x.name),
    ops: m.ops.map((op) =>
      create(OpInfoSchema, {
        name: op.name,
        aliases: [...op.aliases],
        arityMin: op.arity.min,
        arityMax: op.arity.max ?? undefined,
        summary: op.summary,
        kind: op.kind,
        modes: [...op.modes],
        maxOrder: op.maxOrder,
        commutative: op.commutative,
        attributes: [...op.attributes],
        kinks: op.kinks ?? "",
        secondOrder: op.secondOrder ?? "",
        operands: op.operands,
      }),
    ),
  });
}
