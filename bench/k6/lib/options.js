// The k6 options both scripts share: one ramping-arrival-rate scenario per workload, with latency
// thresholds per scenario. Plain ECMAScript with no imports, like bodies.js.

/** Peak iterations per second and pre-allocated VUs of each scenario. W3 is a real training step. */
const PEAKS = { w1: [200, 20], w2: [50, 10], w3: [4, 4] };
/** Latency targets per scenario, ms: [p95, p99]. */
const LATENCY = { w1: [50, 150], w2: [100, 250], w3: [1500, 3000] };

/** Ramps to `peak` iterations per second over 30 s, holds it for a minute, ramps down over 15 s. */
function ramp(exec, peak, vus) {
  return {
    executor: "ramping-arrival-rate",
    exec: exec,
    startRate: 1,
    timeUnit: "1s",
    preAllocatedVUs: vus,
    maxVUs: vus * 5,
    stages: [
      { duration: "30s", target: peak },
      { duration: "1m", target: peak },
      { duration: "15s", target: 0 },
    ],
  };
}

/**
 * `options` for the scenarios named in `only` (each runs the exported function of its name), every
 * peak scaled by `rate`, with p95/p99 thresholds on `durationMetric` per scenario besides `thresholds`.
 */
export function scenarioOptions(only, rate, durationMetric, thresholds) {
  const scenarios = {};
  const all = Object.assign({}, thresholds);
  for (const name of only) {
    if (!PEAKS[name]) throw new Error(`unknown scenario ${name}: w1, w2 or w3`);
    scenarios[name] = ramp(name, Math.max(1, Math.round(PEAKS[name][0] * rate)), PEAKS[name][1]);
    all[`${durationMetric}{scenario:${name}}`] = [`p(95)<${LATENCY[name][0]}`, `p(99)<${LATENCY[name][1]}`];
  }
  return { scenarios: scenarios, thresholds: all };
}
