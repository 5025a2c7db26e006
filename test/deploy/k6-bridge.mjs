// A worker that makes the k6 stand-ins of test/deploy/k6.test.ts synchronous, as k6's own calls are:
// the test's thread posts a request and sleeps on Atomics.wait; this worker does the HTTP or gRPC call
// and posts the answer back the way k6 gives it (gRPC messages in the protobuf JSON mapping with every
// field emitted, as k6's protojson.MarshalOptions{EmitUnpopulated: true}).
import { workerData } from "node:worker_threads";
import { fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AdjointService } from "../../dist/src/grpc/gen/adjoint/v1/adjoint_pb.js";

const { port, signal } = workerData;
const identity = (b) => b;
const clients = new Map();

function client(addr, params) {
  if (!clients.has(addr)) {
    const max = params?.maxReceiveSize || 4 * 1024 * 1024;
    clients.set(addr, new grpc.Client(addr, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": max }));
  }
  return clients.get(addr);
}

async function http(req) {
  const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

async function unary(req) {
  const name = req.method.split("/").pop();
  const method = AdjointService.methods.find((m) => m.name === name);
  if (!method) return { status: 12, message: null, error: { code: 12, message: `unknown method ${req.method}` } };
  const bytes = Buffer.from(toBinary(method.input, fromJson(method.input, req.message)));
  const answer = await new Promise((resolve) =>
    client(req.addr, req.params).makeUnaryRequest(`/${req.method.replace(/^\//, "")}`, identity, identity, bytes, (err, value) =>
      resolve(err ? { err } : { value }),
    ),
  );
  if (answer.err) return { status: answer.err.code, message: null, error: { code: answer.err.code, message: answer.err.details } };
  return { status: 0, message: toJson(method.output, fromBinary(method.output, answer.value), { alwaysEmitImplicit: true }), error: null };
}

port.on("message", async (req) => {
  let answer;
  try {
    answer = req.kind === "http" ? await http(req) : await unary(req);
  } catch (e) {
    answer = { failure: String(e?.stack ?? e) };
  }
  port.postMessage(answer);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
});
