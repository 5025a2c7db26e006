import { Agent, request } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { CLIENT_FLOW_WINDOW } from "../../src/grpc/flow-control.js";
import type { Scenario } from "./scenarios.js";

/** The service's unary method, called with pre-encoded requests. */
export const DIFFERENTIATE = "/adjoint.v1.AdjointService/Differentiate";

const identity = (b: Buffer) => b;

/** A client; `own` gives it a connection of its own (grpc-js otherwise shares one per target). */
export function grpcClient(port: number, own = false): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
    // Large answers (W3's 1.6 MB) come in a few round trips rather than forty (src/grpc/flow-control.ts).
    "grpc-node.flow_control_window": CLIENT_FLOW_WINDOW,
    ...(own ? { "grpc.use_local_subchannel_pool": 1 } : {}),
  });
}

/** One unary call with a pre-encoded request; resolves to the answer's bytes. */
export function grpcCall(client: grpc.Client, path: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(path, identity, identity, body, (err, v) => (err ? reject(err) : resolve(v as Buffer))),
  );
}

export interface HttpAnswer {
  readonly status: number;
  readonly headerLength: string | null;
  readonly body: Buffer;
}

/** A POST over a keep-alive agent (cheaper per request than fetch, which matters on two cores). */
export function httpPost(agent: Agent, url: URL, body: Buffer, headers: Record<string, string>): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent, headers: { ...headers, "content-length": String(body.byteLength) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const h = res.headers["adjoint-header-length"];
        resolve({ status: res.statusCode ?? 0, headerLength: typeof h === "string" ? h : null, body: Buffer.concat(chunks) });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

export function keepAliveAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets });
}

/** Sends a scenario once over both transports and checks the numbers; undefined when both are right. */
export async function checkScenario(s: Scenario, httpPort: number, grpcPort: number): Promise<string | undefined> {
  const agent = keepAliveAgent(1);
  const client = grpcClient(grpcPort);
  try {
    const a = await httpPost(agent, new URL(`http://127.0.0.1:${httpPort}/v1/differentiate`), s.http.body, s.http.headers);
    const bad = s.checkHttp(a.status, a.headerLength, a.body);
    if (bad) return `HTTP: ${bad}`;
    const g = s.checkGrpc(await grpcCall(client, DIFFERENTIATE, s.grpc));
    return g ? `gRPC: ${g}` : undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    agent.destroy();
    client.close();
  }
}
