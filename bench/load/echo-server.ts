import { readFileSync } from "node:fs";
import Fastify from "fastify";
import { serveFixedGrpc } from "./fixed-grpc.js";

/**
 * The floor of a large request: a fastify route and a grpc-js method that read the request whole and
 * answer fixed bytes, the service's own answers to the same requests (files named by ECHO_BINARY,
 * ECHO_BINARY_HEADER_LENGTH, ECHO_JSON and ECHO_GRPC). With the same bytes each way, what a call costs
 * here is what moving them costs, client included, with nothing computed (bench/load/step.ts).
 */
const binary = readFileSync(process.env.ECHO_BINARY as string);
const binaryHeaderLength = process.env.ECHO_BINARY_HEADER_LENGTH as string;
const json = readFileSync(process.env.ECHO_JSON as string);
const grpcAnswer = readFileSync(process.env.ECHO_GRPC as string);

const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
app.addContentTypeParser(["application/vnd.adjoint+binary", "application/json"], { parseAs: "buffer" }, (_req, body, done) =>
  done(null, body),
);
app.post("/v1/differentiate", async (request, reply) =>
  request.headers["content-type"] === "application/json"
    ? reply.type("application/json; charset=utf-8").send(json)
    : reply.type("application/vnd.adjoint+binary").header("adjoint-header-length", binaryHeaderLength).send(binary),
);
await app.listen({ host: "127.0.0.1", port: 0 });

const grpcPort = await serveFixedGrpc("/adjoint.v1.AdjointService/Differentiate", grpcAnswer);
process.stdout.write(
  `${JSON.stringify({ msg: "echo is serving", httpPort: (app.server.address() as { port: number }).port, grpcPort })}\n`,
);
process.once("SIGTERM", () => process.exit(0));
