/**
 * A gemm helper thread (see gemm-team.ts): the owner's compiled kernels over the owner's shared memory,
 * computing the chunks it claims until the owner stops it.
 */
import { workerData } from "node:worker_threads";
import { type GemmFn, type HelperData, helperLoop } from "./gemm-team.js";
import { wasmApi } from "./wasm/webassembly-api.js";

const { module, memory, control, work } = workerData as HelperData;
if (wasmApi === undefined) throw new Error("WebAssembly is not available in this engine");
const exports = new wasmApi.Instance(module, { env: { memory } }).exports;
helperLoop(new Int32Array(control), exports["gemm_f64"] as GemmFn, exports["gemm_f32"] as GemmFn, work);
