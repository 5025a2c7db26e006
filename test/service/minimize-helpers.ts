import { readFileSync } from "node:fs";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { generateW3 } from "../../bench/workloads/w3.js";
import { type MinimizeProgress, MinimizeRequestSchema, type Tensor } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import type { TestServer } from "./helpers.js";

export const ROSENBROCK = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)";

export function rosenbrock(n: number) {
  return { expression: ROSENBROCK, inputs: [{ name: "x", shape: [n] }] };
}

/** The classic start (−1.2, 1, −1.2, …). */
export function rosenStart(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i % 2 === 0 ? -1.2 : 1));
}

export function tensorData(t: unknown): number[] {
  const v = t as { data?: number[]; base64?: string };
  if (v.base64 !== undefined) return Array.from(new Float64Array(Uint8Array.from(Buffer.from(v.base64, "base64")).buffer));
  return v.data as number[];
}

export function tensorElements(t: Tensor | undefined): number[] {
  if (!t) throw new Error("no tensor");
  if (t.raw.byteLength) return Array.from(new Float64Array(Uint8Array.from(t.raw).buffer));
  return t.values;
}

/** One Server-Sent Event. */
export interface SseEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
}

export function parseSse(text: string): SseEvent[] {
  return text
    .split("\n\n")
    .filter((block) => block.trim())
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message";
      const data = lines
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      return { event, data: JSON.parse(data) };
    });
}

/** Minimize over gRPC: every message of the stream, or the error with the messages received before it. */
export function grpcMinimize(
  server: TestServer,
  req: MessageInitShape<typeof MinimizeRequestSchema>,
  options: grpc.CallOptions = {},
): Promise<{ messages: MinimizeProgress[]; error?: grpc.ServiceError }> {
  const client = server.client as unknown as {
    minimize(r: unknown, m: grpc.Metadata, o: grpc.CallOptions): grpc.ClientReadableStream<MinimizeProgress>;
  };
  return new Promise((resolve) => {
    const messages: MinimizeProgress[] = [];
    const call = client.minimize(create(MinimizeRequestSchema, req), new grpc.Metadata(), options);
    call.on("data", (m: MinimizeProgress) => messages.push(m));
    call.on("error", (error: grpc.ServiceError) => resolve({ messages, error }));
    call.on("end", () => resolve({ messages }));
  });
}

/** The W3 model and its start (data and parameters) as JSON tensors in base64. */
export function w3Start(): { model: unknown; start: Record<string, unknown> } {
  const d = generateW3();
  const model = JSON.parse(readFileSync(new URL("../../examples/mlp.model.json", import.meta.url), "utf8"));
  const b64 = (shape: number[], a: Float64Array) => ({
    shape,
    dtype: "float64",
    base64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64"),
  });
  return {
    model,
    start: {
      x: b64([128, 784], d.X),
      y: b64([128], Float64Array.from(d.labels)),
      "fc1.weight": b64([784, 256], d.W1),
      "fc1.bias": b64([256], d.b1),
      "fc2.weight": b64([256, 10], d.W2),
      "fc2.bias": b64([10], d.b2),
    },
  };
}

export const W3_PARAMETERS: readonly [string, number[]][] = [
  ["fc1.weight", [784, 256]],
  ["fc1.bias", [256]],
  ["fc2.weight", [256, 10]],
  ["fc2.bias", [10]],
];
