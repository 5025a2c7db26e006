import { type Readable, Writable } from "node:stream";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { grpcServiceDefinition } from "../../src/grpc/definition.js";
import {
  AdjointService,
  type DifferentiateRequest,
  DifferentiateRequestSchema,
  type DifferentiateResponse,
  type FunctionInfo,
  GetFunctionRequestSchema,
  ListOpsRequestSchema,
  type ListOpsResponse,
  RegisterFunctionRequestSchema,
  type Tensor,
} from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { type RunningAdjoint, startAdjoint } from "../../src/main.js";
import { loadConfig, type ServiceConfig } from "../../src/service/config.js";

export const WORKED = { function: { expression: "x1*exp(-0.5*(x1^2+x2^2))" }, point: { x1: 2, x2: 0.5 } };
export const E = Math.exp(-2.125);
export const WORKED_VALUES = { f: 2 * E, x1: -3 * E, x2: -E };

/** Log lines the server wrote, parsed. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) this.lines.push(JSON.parse(line));
    done();
  }
}

type GrpcCallback<T> = (err: grpc.ServiceError | null, value?: T) => void;
type Unary<Req, Res> = (req: Req, metadata: grpc.Metadata, options: grpc.CallOptions, cb: GrpcCallback<Res>) => grpc.ClientUnaryCall;

export interface AdjointClient extends grpc.Client {
  differentiate: Unary<DifferentiateRequest, DifferentiateResponse>;
  registerFunction: Unary<unknown, FunctionInfo>;
  getFunction: Unary<unknown, FunctionInfo>;
  listOps: Unary<unknown, ListOpsResponse>;
  differentiateStream(
    metadata?: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientDuplexStream<DifferentiateRequest, DifferentiateResponse>;
}

/** A DifferentiateStream's answers, once it ends (rejected with its error). */
export function streamAnswers(
  call: grpc.ClientDuplexStream<DifferentiateRequest, DifferentiateResponse>,
): Promise<DifferentiateResponse[]> {
  const answers: DifferentiateResponse[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (r: DifferentiateResponse) => answers.push(r));
    call.on("end", () => resolve(answers));
    call.on("error", reject);
  });
}

const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(AdjointService), "AdjointService");

export interface TestServer {
  readonly app: RunningAdjoint;
  readonly base: string;
  readonly client: AdjointClient;
  readonly logs: LogCapture;
  post(
    path: string,
    body: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  get(path: string): Promise<{ status: number; body: Record<string, unknown>; text: string; headers: Headers }>;
  differentiate(req: MessageInitShape<typeof DifferentiateRequestSchema>, options?: grpc.CallOptions): Promise<DifferentiateResponse>;
  register(fn: MessageInitShape<typeof RegisterFunctionRequestSchema>["function"]): Promise<FunctionInfo>;
  getFunction(id: string): Promise<FunctionInfo>;
  listOps(): Promise<ListOpsResponse>;
  close(): Promise<void>;
}

function promisify<Req, Res>(method: Unary<Req, Res>, client: grpc.Client, req: Req, options: grpc.CallOptions = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new grpc.Metadata(), options, (err, value) => (err ? reject(err) : resolve(value as Res)));
  });
}

/** A gRPC client of the service on `port` (a connection of its own), with its unary calls as promises. */
export function grpcClientOf(port: number) {
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  }) as unknown as AdjointClient;
  return {
    client,
    differentiate: (req: MessageInitShape<typeof DifferentiateRequestSchema>, options?: grpc.CallOptions) =>
      promisify(client.differentiate, client, create(DifferentiateRequestSchema, req), options),
    register: (fn: MessageInitShape<typeof RegisterFunctionRequestSchema>["function"]) =>
      promisify(client.registerFunction, client, create(RegisterFunctionRequestSchema, { function: fn })),
    getFunction: (id: string) => promisify(client.getFunction, client, create(GetFunctionRequestSchema, { id })),
    listOps: () => promisify(client.listOps, client, create(ListOpsRequestSchema, {})),
  };
}

/** A real server on ephemeral ports (HTTP and gRPC on loopback), with clients for both. */
export async function startTestServer(overrides: Partial<ServiceConfig> = {}): Promise<TestServer> {
  const config = loadConfig([], {}, { host: "127.0.0.1", httpPort: 0, grpcPort: 0, workers: 1, logLevel: "info", ...overrides });
  const logs = new LogCapture();
  const app = await startAdjoint(config, pino({ level: config.logLevel }, logs));
  const base = `http://127.0.0.1:${app.httpPort}`;
  const grpcClient = grpcClientOf(app.grpcPort);
  const client = grpcClient.client;
  return {
    ...grpcClient,
    app,
    base,
    logs,
    async post(path, body, headers = {}) {
      const res = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
    },
    async get(path) {
      const res = await fetch(`${base}${path}`);
      const text = await res.text();
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text);
      } catch {}
      return { status: res.status, body, text, headers: res.headers };
    },
    async close() {
      client.close();
      await app.shutdown();
    },
  };
}

/** A result tensor as a number (scalars) or its elements. */
export function num(t: Tensor | undefined): number {
  if (!t) throw new Error("no tensor");
  if (t.values.length === 1) return t.values[0];
  throw new Error(`not a scalar: ${JSON.stringify(t.shape)}`);
}

export function elements(t: Tensor | undefined): number[] {
  if (!t) throw new Error("no tensor");
  if (t.raw.byteLength) return Array.from(new Float64Array(Uint8Array.from(t.raw).buffer));
  return t.values;
}

/** A scalar function with many ops, slow enough per point to keep a worker busy for seconds on big batches. */
export function heavyExpression(terms: number): string {
  return Array.from({ length: terms }, (_, i) => `sin(x*${(1 + i / 1000).toFixed(4)})`).join("+");
}

/** A JSON graph's nodes as gRPC GraphNode messages: operands by id or inline number, attributes as a Struct. */
export function grpcNodes(
  nodes: readonly { id: string; op: string; args?: readonly (string | number)[]; attrs?: Record<string, unknown> }[],
) {
  return nodes.map((n) => ({
    id: n.id,
    op: n.op,
    args: (n.args ?? []).map((a) => ({
      arg: typeof a === "number" ? { case: "number" as const, value: a } : { case: "id" as const, value: a },
    })),
    ...(n.attrs ? { attrs: n.attrs as never } : {}),
  }));
}

/** Collects a process's JSON log lines into `lines` as they arrive; a line that does not parse throws. */
export function collectJsonLines(stdout: Readable, lines: Record<string, unknown>[]): void {
  let buffer = "";
  stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop() ?? "";
    for (const p of parts) if (p.trim()) lines.push(JSON.parse(p));
  });
}
