/** Heavy numeric kernels over typed arrays: matmul, conv2d and pooling, with their derivatives. */
export * from "./conv2d.js";
export { MATMUL_SMALL_WORK, type MatmulBackend, type MatmulSpec, matmul, matmulBackendFor, warmUpMatmul } from "./matmul.js";
export {
  chooseWasmKernel,
  gemmHelpedChunks,
  gemmModuleOf,
  RELAXED_SIMD_BY_DEFAULT,
  RELAXED_SIMD_ENV,
  relaxedSimdSupported,
  releaseWasmGemm,
  useGemmHelpers,
  WasmGemm,
  type WasmKernelKind,
  wasmGemmAvailable,
  wasmGemmMemoryBytes,
  wasmKernelKind,
} from "./matmul-wasm.js";
export * from "./pool2d.js";
export { type FloatArray, KernelArgumentError } from "./types.js";
