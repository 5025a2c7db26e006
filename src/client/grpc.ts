import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Client, credentials, Metadata, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../grpc/definition.js";
import { CLIENT_FLOW_WINDOW } from "../grpc/flow-control.js";
import {
  AdjointService,
  DifferentiateRequestSchema,
  type DifferentiateResponse,
  ElementType,
  type FunctionInfo as FunctionInfoMsg,
  type Function as FunctionMsg,
  FunctionSchema,
  ListOpsRequestSchema,
  ModeSchema,
  type Point,
  PointSchema,
  Precision,
  RegisterFunctionRequestSchema,
  type Result as ResultMsg,
  type Tensor as TensorMsg,
  TensorSchema,
} from "../grpc/gen/adjoint/v1/adjoint_pb.js";
import {
  AdjointClientError,
  type FunctionInfo,
  type Request,
  type Result,
  type Tensor,
  type TensorInput,
  toTensor,
  type Values,
} from "./types.js";

/** gRPC over grpc-js with the generated protobuf-es messages: tensors as raw little-endian bytes. */

const MAX_MESSAGE = 64 * 1024 * 1024;
const KINDS: Record<number, string> = {
  1: "cancelled",
  3: "invalid_argument",
  4: "deadline_exceeded",
  5: "not_found",
  8: "resource_exhausted",
  13: "internal",
  14: "unavailable",
};

function tensorMsg(v: TensorInput): TensorMsg {
  const t = toTensor(v);
  return create(TensorSchema, {
    shape: t.shape,
    dtype: ElementType.FLOAT64,
    raw: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  });
}

function pointMsg(values: Record<string, TensorInput> | undefined): Point | undefined {
  if (!values) return undefined;
  return create(PointSchema, { tensors: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, tensorMsg(v)])) });
}

export function tensorOf(t: TensorMsg): number | Tensor {
  let data: Float64Array;
  if (t.raw.byteLength > 0) {
    const bytes = new Uint8Array(t.raw); // a copy (Buffer.slice would be a view): aligned, and our own
    data =
      t.dtype === ElementType.FLOAT32
        ? Float64Array.from(new Float32Array(bytes.buffer))
        : t.dtype === ElementType.INT32
          ? Float64Array.from(new Int32Array(bytes.buffer))
          : t.dtype === ElementType.INT64
            ? Float64Array.from(new BigInt64Array(bytes.buffer), Number)
            : new Float64Array(bytes.buffer);
  } else data = Float64Array.from(t.values);
  return t.shape.length === 0 ? data[0] : { shape: [...t.shape], data };
}

const named = (m: Record<string, TensorMsg>): Values => Object.fromEntries(Object.entries(m).map(([k, t]) => [k, tensorOf(t)]));

/**
 * A model definition (docs/model.schema.json) as the typed Model message: a pair field (kernel, ...)
 * as a list of one or two, the loss by name. The server validates the rest as it does JSON.
 */
function modelMsg(m: Record<string, unknown>): Record<string, unknown> {
  const asList = (v: unknown) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);
  const layers = ((m.layers as Record<string, unknown>[] | undefined) ?? []).map((l) => ({
    ...l,
    kernel: asList(l.kernel),
    stride: asList(l.stride),
    padding: asList(l.padding),
    dilation: asList(l.dilation),
  }));
  const loss = typeof m.loss === "object" && m.loss !== null ? (m.loss as { type?: string }).type : m.loss;
  return { input: m.input, layers, loss, ...(m.targets ? { targets: m.targets } : {}) };
}

function functionMsg(f: Record<string, unknown>): FunctionMsg {
  const inputs = ((f.inputs as unknown[]) ?? []).map((i) =>
    typeof i === "string" ? { name: i } : (i as { name: string; shape?: number[] }),
  );
  if (typeof f.id === "string") return create(FunctionSchema, { source: { case: "id", value: f.id } });
  if (typeof f.expression === "string") return create(FunctionSchema, { source: { case: "expression", value: f.expression }, inputs });
  if (f.expressions && typeof f.expressions === "object") {
    const outputs = Object.entries(f.expressions as Record<string, string>).map(([name, text]) => ({ name, text }));
    return create(FunctionSchema, { source: { case: "expressions", value: { outputs } }, inputs });
  }
  if (f.model && typeof f.model === "object") {
    const init = { source: { case: "sequentialModel", value: modelMsg(f.model as Record<string, unknown>) }, batch: Number(f.batch ?? 0) };
    return create(FunctionSchema, init as MessageInitShape<typeof FunctionSchema>);
  }
  throw new AdjointClientError("invalid_argument", "the gRPC client takes expression, expressions, model or id", "function");
}

function resultOf(response: DifferentiateResponse, r: ResultMsg): Result {
  const outputs = named(r.outputs);
  const names = Object.keys(outputs);
  const fields: Record<string, unknown> = {};
  for (const key of ["gradient", "jvp", "vjp", "hvp"] as const) if (Object.keys(r[key]).length) fields[key] = named(r[key]);
  for (const key of ["jacobian", "hessian"] as const) {
    if (Object.keys(r[key]).length) fields[key] = Object.fromEntries(Object.entries(r[key]).map(([a, m]) => [a, named(m.tensors)]));
  }
  for (const key of ["derivative", "divergence", "laplacian"] as const) {
    const t = r[key];
    if (t) fields[key] = tensorOf(t);
  }
  if (r.method) fields.method = r.method;
  const single = names.length === 1;
  // The single-output shortcut (Result.value); a server that predates it leaves it unset.
  return {
    id: response.id,
    mode: response.mode,
    value: r.value ? tensorOf(r.value) : single ? outputs[names[0]] : undefined,
    outputs: single ? {} : outputs,
    gradient: fields.gradient as Values | undefined,
    fields,
  };
}

function infoOf(m: FunctionInfoMsg): FunctionInfo {
  const specs = (xs: FunctionInfoMsg["inputs"]) => xs.map((s) => ({ name: s.name, shape: [...s.shape], dtype: s.dtype || "float" }));
  return { id: m.id, inputs: specs(m.inputs), outputs: specs(m.outputs) };
}

function clientError(e: ServiceError): AdjointClientError {
  const get = (key: string) => e.metadata?.get(key)[0]?.toString();
  const after = get("retry-after");
  const kind = get("adjoint-kind") ?? KINDS[e.code] ?? "internal";
  return new AdjointClientError(
    kind,
    e.details ?? e.message,
    get("adjoint-field"),
    e.code,
    after === undefined ? undefined : Number(after) * 1000,
  );
}

type Unary = (request: unknown, metadata: Metadata, options: object, done: (e: ServiceError | null, r: unknown) => void) => unknown;

export class GrpcTransport {
  private readonly client: Client & Record<string, Unary>;
  constructor(target: string) {
    const Ctor = makeGenericClientConstructor(grpcServiceDefinition(AdjointService), "AdjointService");
    const options = {
      "grpc.max_send_message_length": MAX_MESSAGE,
      "grpc.max_receive_message_length": MAX_MESSAGE,
      // HTTP/2's 64 KiB window would take a large answer in dozens of round trips (src/grpc/flow-control.ts).
      "grpc-node.flow_control_window": CLIENT_FLOW_WINDOW,
    };
    this.client = new Ctor(target, credentials.createInsecure(), options) as Client & Record<string, Unary>;
  }

  close(): void {
    this.client.close();
  }

  private unary<T>(method: string, request: unknown, signal: AbortSignal): Promise<T> {
    return new Promise((resolve, reject) => {
      // The signal carries the call's deadline (retries included): cancelling the call on it ends it.
      const call = this.client[method].call(this.client, request, new Metadata(), {}, (e, r) =>
        e ? reject(clientError(e)) : resolve(r as T),
      ) as { cancel(): void };
      signal.addEventListener("abort", () => call.cancel(), { once: true });
    });
  }

  async differentiate(r: Request, signal: AbortSignal): Promise<Result> {
    const columns = r.columns && Object.fromEntries(Object.entries(r.columns).map(([k, v]) => [k, tensorMsg(v)]));
    const request = create(DifferentiateRequestSchema, {
      function: functionMsg(r.function),
      point: pointMsg(r.point),
      columns,
      mode: ModeSchema.values.find((v) => v.localName === r.mode.toUpperCase())?.number ?? 0,
      wrt: r.wrt ? [...r.wrt] : [],
      tangent: pointMsg(r.tangent),
      cotangent: pointMsg(r.cotangent),
      precision: r.precision === "float32" ? Precision.FLOAT32 : Precision.UNSPECIFIED,
      order: r.order,
    });
    const response = await this.unary<DifferentiateResponse>("differentiate", request, signal);
    const row = r.columns ? response.columns : response.result;
    if (!row) throw new AdjointClientError("internal", "the answer carries no result");
    return resultOf(response, row);
  }

  async register(fn: Record<string, unknown>, signal: AbortSignal): Promise<FunctionInfo> {
    return infoOf(
      await this.unary<FunctionInfoMsg>("registerFunction", create(RegisterFunctionRequestSchema, { function: functionMsg(fn) }), signal),
    );
  }

  ops(signal: AbortSignal): Promise<unknown> {
    return this.unary("listOps", create(ListOpsRequestSchema, {}), signal);
  }
}
