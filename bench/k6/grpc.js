// k6 load test of adjoint's gRPC API (adjoint.v1.AdjointService/Differentiate): the worked example
// (W1), the Rosenbrock gradient at n = 1,000 (W2) and one W3 training step, each at a ramping arrival
// rate, with every answer's numbers checked against the closed forms.
//
//   k6 run bench/k6/grpc.js -e GRPC_ADDR=localhost:50051
//   k6 run bench/k6/grpc.js -e GRPC_ADDR=... -e REFLECT=1     (no .proto: use server reflection)
//
// The .proto is loaded from the repository's proto/ (paths relative to this script). The service also
// has server reflection on, so instead of client.load() a script may connect with
// client.connect(addr, { plaintext: true, reflect: true }) and use the same method names; REFLECT=1
// does that. k6 APIs only (no Node modules); bench/k6/lib/bodies.js builds the messages and checks the
// answers.
import { check } from "k6";
import { SharedArray } from "k6/data";
import encoding from "k6/encoding";
import { Rate } from "k6/metrics";
import grpc from "k6/net/grpc";
import { W2_N, w1Grpc, w1GrpcProblem, w2Grpc, w2GrpcProblem, w3Grpc, w3GrpcProblem } from "./lib/bodies.js";
import { scenarioOptions } from "./lib/options.js";

const ADDR = __ENV.GRPC_ADDR || "localhost:50051";
const REFLECT = __ENV.REFLECT === "1";
const RATE = Number(__ENV.RATE || 1);
const ONLY = (__ENV.SCENARIOS || "w1,w2,w3").split(",");
const METHOD = "adjoint.v1.AdjointService/Differentiate";

const client = new grpc.Client();
if (!REFLECT) client.load(["../../proto"], "adjoint/v1/adjoint.proto");

/** A call that failed or whose numbers are wrong. */
const errors = new Rate("adjoint_errors");

// Built once (in the init context of the first VU) and shared read-only by every VU, as JSON text.
const messages = new SharedArray("adjoint gRPC messages", () => {
  const model = JSON.parse(open("../../examples/mlp.model.json"));
  return [JSON.stringify(w1Grpc()), JSON.stringify(w2Grpc(W2_N)), JSON.stringify(w3Grpc(model, (bytes) => encoding.b64encode(bytes)))];
});
/** Each VU parses its messages once. */
const parsed = [];
function message(i) {
  if (parsed[i] === undefined) parsed[i] = JSON.parse(messages[i]);
  return parsed[i];
}

export const options = scenarioOptions(ONLY, RATE, "grpc_req_duration", { adjoint_errors: ["rate<0.01"], checks: ["rate>0.99"] });

// One connection per VU, opened on its first iteration (connect() is not allowed in the init context).
let connected = false;

function differentiate(request, problemOf) {
  if (!connected) {
    client.connect(ADDR, {
      plaintext: true,
      reflect: REFLECT,
      timeout: "10s",
      maxReceiveSize: 64 * 1024 * 1024,
      maxSendSize: 64 * 1024 * 1024,
    });
    connected = true;
  }
  const res = client.invoke(METHOD, request, { timeout: "60s" });
  let problem = `gRPC status ${res.status}: ${JSON.stringify(res.error)}`;
  if (res.status === grpc.StatusOK) {
    try {
      problem = problemOf(res.message);
    } catch (e) {
      problem = `unreadable answer: ${e}`;
    }
  }
  errors.add(problem !== "");
  check(res, {
    "status is OK": (r) => r.status === grpc.StatusOK,
    "numbers match the closed form": () => problem === "",
  });
  if (problem !== "") console.warn(problem.slice(0, 300));
}

const decode = (text) => encoding.b64decode(text, "std");

export function w1() {
  differentiate(message(0), (m) => w1GrpcProblem(m, decode));
}

export function w2() {
  differentiate(message(1), (m) => w2GrpcProblem(m, W2_N, decode));
}

export function w3() {
  differentiate(message(2), (m) => w3GrpcProblem(m, decode));
}
