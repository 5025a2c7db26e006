import Fastify from "fastify";
import { serveFixedGrpc } from "./fixed-grpc.js";

/**
 * The transports' own ceiling: a fastify route and a grpc-js method that do nothing. The load benchmark
 * runs them side by side with the service, on the same machine, with the same bodies.
 */
const BINARY_TYPES = ["application/vnd.adjoint+binary", "application/octet-stream"];

const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
app.addContentTypeParser(BINARY_TYPES, { parseAs: "buffer" }, (_req, body, done) => done(null, body));
app.post("/trivial", async () => ({ ok: true }));
await app.listen({ host: "127.0.0.1", port: 0 });

const grpcPort = await serveFixedGrpc("/bench.Trivial/Echo", Buffer.from([8, 1]));
process.stdout.write(
  `${JSON.stringify({ msg: "trivial is serving", httpPort: (app.server.address() as { port: number }).port, grpcPort })}\n`,
);
process.once("SIGTERM", () => process.exit(0));
