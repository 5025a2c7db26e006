/** Heavy numeric kernels over typed arrays: matmul, conv2d and pooling, with their derivatives. */
export * from "./conv2d.js";
export { MATMUL_SMALL_WORK, type MatmulBackend, type MatmulSpec, matmul, matmulBackendFor, warmUpMatmul } from "./matmul.js";
export { releaseWasmGemm, WasmGemm, wasmGemmAvailable, wasmGemmMemoryBytes } from "./matmul-wasm.js";
export * from "./pool2d.js";
export { type FloatArray, KernelArgumentError } from "./types.js";
