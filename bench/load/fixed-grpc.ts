import * as grpc from "@grpc/grpc-js";
import { bindWithFlowWindow } from "../../src/grpc/flow-control.js";
import { loadConfig } from "../../src/service/config.js";

const identity = (b: Buffer) => b;
const LIMIT = 64 * 1024 * 1024;

/**
 * A grpc-js server with one unary method at `path` that takes any bytes and answers `answer`, with
 * identity (de)serialisers: what a call costs there is grpc-js moving the bytes, nothing else. Its
 * HTTP/2 flow-control window is the service's default, so that large messages cross alike.
 * Resolves to the bound port (loopback).
 */
export async function serveFixedGrpc(path: string, answer: Buffer): Promise<number> {
  const server = new grpc.Server({ "grpc.max_receive_message_length": LIMIT, "grpc.max_send_message_length": LIMIT });
  server.addService(
    {
      call: {
        path,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    { call: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, answer) },
  );
  const { port, windowSet } = await bindWithFlowWindow(server, "127.0.0.1:0", loadConfig([], {}).grpcFlowWindow);
  if (!windowSet) throw new Error("grpc-js did not take the flow-control window");
  return port;
}
