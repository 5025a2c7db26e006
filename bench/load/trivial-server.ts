import * as grpc from "@grpc/grpc-js";
import Fastify from "fastify";

/**
 * The transports' own ceiling: a fastify route and a grpc-js method that do nothing. The load benchmark
 * runs them side by side with the service, on the same machine, with the same bodies.
 */
const BINARY_TYPES = ["application/vnd.adjoint+binary", "application/octet-stream"];

const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
app.addContentTypeParser(BINARY_TYPES, { parseAs: "buffer" }, (_req, body, done) => done(null, body));
app.post("/trivial", async () => ({ ok: true }));
await app.listen({ host: "127.0.0.1", port: 0 });

const identity = (b: Buffer) => b;
const reply = Buffer.from([8, 1]);
const server = new grpc.Server({ "grpc.max_receive_message_length": 64 * 1024 * 1024 });
server.addService(
  {
    echo: {
      path: "/bench.Trivial/Echo",
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  },
  { echo: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, reply) },
);
const grpcPort = await new Promise<number>((resolve, reject) =>
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
);
process.stdout.write(
  `${JSON.stringify({ msg: "trivial is serving", httpPort: (app.server.address() as { port: number }).port, grpcPort })}\n`,
);
process.once("SIGTERM", () => process.exit(0));
