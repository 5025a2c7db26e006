// k6 load test of adjoint's REST API: the worked example (W1), the Rosenbrock gradient at n = 1,000
// (W2) and one W3 training step, each at a ramping arrival rate, with every answer's numbers checked
// against the closed forms.
//
//   k6 run bench/k6/http.js -e BASE_URL=http://localhost:8080
//   k6 run bench/k6/http.js -e BASE_URL=... -e SCENARIOS=w1,w2 -e RATE=2   (a subset; twice the rates)
//
// k6 APIs only (no Node modules); bench/k6/lib/bodies.js builds the bodies and checks the answers.
import { check } from "k6";
import { SharedArray } from "k6/data";
import encoding from "k6/encoding";
import http from "k6/http";
import { Rate } from "k6/metrics";
import { W2_N, w1Rest, w1RestProblem, w2Rest, w2RestProblem, w3Rest, w3RestProblem } from "./lib/bodies.js";
import { scenarioOptions } from "./lib/options.js";

const BASE_URL = __ENV.BASE_URL || "http://localhost:8080";
const RATE = Number(__ENV.RATE || 1);
const ONLY = (__ENV.SCENARIOS || "w1,w2,w3").split(",");

/** A request that failed or whose numbers are wrong. */
const errors = new Rate("adjoint_errors");

// Built once (in the init context of the first VU) and shared read-only by every VU. A SharedArray
// deserialises an element on every access (3.2 MB of JSON text for W3: a core of k6's own time at
// 4 steps a second), so each VU takes its copy once (body()).
const bodies = new SharedArray("adjoint REST bodies", () => {
  const model = JSON.parse(open("../../examples/mlp.model.json"));
  return [JSON.stringify(w1Rest()), JSON.stringify(w2Rest(W2_N)), JSON.stringify(w3Rest(model, (bytes) => encoding.b64encode(bytes)))];
});

export const options = scenarioOptions(ONLY, RATE, "http_req_duration", {
  http_req_failed: ["rate<0.01"],
  adjoint_errors: ["rate<0.01"],
  checks: ["rate>0.99"],
});

const params = { headers: { "Content-Type": "application/json" }, timeout: "60s", tags: { name: "POST /v1/differentiate" } };

function differentiate(body, problemOf) {
  const res = http.post(`${BASE_URL}/v1/differentiate`, body, params);
  let problem = `HTTP ${res.status}: ${res.body}`;
  if (res.status === 200) {
    try {
      problem = problemOf(res.json());
    } catch (e) {
      problem = `unreadable answer: ${e}`;
    }
  }
  errors.add(problem !== "");
  check(res, {
    "status is 200": (r) => r.status === 200,
    "numbers match the closed form": () => problem === "",
  });
  if (problem !== "") console.warn(problem.slice(0, 300));
}

/** Each VU reads its bodies out of the SharedArray once. */
const own = [];
function body(i) {
  if (own[i] === undefined) own[i] = bodies[i];
  return own[i];
}

export function w1() {
  differentiate(body(0), w1RestProblem);
}

export function w2() {
  differentiate(body(1), (answer) => w2RestProblem(answer, W2_N));
}

export function w3() {
  differentiate(body(2), (answer) => w3RestProblem(answer, (text) => encoding.b64decode(text)));
}
