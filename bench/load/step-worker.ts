/**
 * The in-process W3 step on a thread set up as the service's pool workers are: with its matmul helpers
 * (ADJOINT_MATMUL_HELPERS's default), so that step.ts can set the service beside the same computation
 * on the same threads. Each message asks for a number of steps; the answer is ms per step.
 */
import { parentPort, workerData } from "node:worker_threads";
import { useGemmHelpers, warmUpMatmul } from "../../src/tensor/kernels/index.js";
import { oursW3 } from "../suites/w3.js";
import { generateW3, W3_REFERENCE_LOSS, w3ZeroParams } from "../workloads/w3.js";

useGemmHelpers((workerData as { helpers: number }).helpers);
warmUpMatmul();
const data = generateW3();
const grads = w3ZeroParams();
const step = oursW3().find((i) => i.lossAndGradient !== undefined)?.lossAndGradient;
if (step === undefined) throw new Error("no in-process W3 step");
parentPort?.on("message", (calls: number) => {
  const t = performance.now();
  for (let i = 0; i < calls; i++) {
    const loss = step(data, data, grads);
    if (Math.abs(loss - W3_REFERENCE_LOSS) > 1e-9) throw new Error(`W3 loss ${loss}, expected ${W3_REFERENCE_LOSS}`);
  }
  parentPort?.postMessage((performance.now() - t) / calls);
});
