/**
 * `adjoint/client`: the service's client for Node and browsers, Float64Array in and out.
 *
 *   const client = await connect("http://localhost:8080");   // or "grpc://localhost:50051" (Node only)
 *   const r = await client.differentiate("x1*exp(-0.5*(x1^2+x2^2))", { x1: 2, x2: 0.5 });
 *   r.value; r.gradient?.x1;
 *
 * The gRPC transport (grpc-js) is loaded only for grpc:// URLs, so a browser bundle takes fetch alone.
 */
import { AdjointClient } from "./core.js";
import { HttpTransport } from "./http.js";
import type { ClientOptions } from "./types.js";

export { AdjointClient } from "./core.js";
export * from "./types.js";

export async function connect(url: string, options: ClientOptions = {}): Promise<AdjointClient> {
  const settings = { timeoutMs: options.timeoutMs ?? 60_000, retries: options.retries ?? 5, backoffMs: options.backoffMs ?? 50 };
  const parsed = new URL(url);
  if (parsed.protocol === "http:" || parsed.protocol === "https:") return new AdjointClient(new HttpTransport(url), settings);
  if (parsed.protocol === "grpc:") {
    const { GrpcTransport } = await import("./grpc.js");
    return new AdjointClient(new GrpcTransport(parsed.host), settings);
  }
  throw new TypeError(`${url}: the scheme must be http, https or grpc`);
}
