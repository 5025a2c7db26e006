/**
 * The WebAssembly SIMD matrix multiply (f64x2 and f32x4 micro-kernels; see wasm/gemm-wat.ts), and the
 * low-level access (staging area, gemm and im2col/col2im at byte addresses) that conv2d builds on.
 *
 * WebAssembly code reads only its own linear memory, which cannot alias an arbitrary SharedArrayBuffer,
 * so each call copies its operands in (one memcpy-speed `TypedArray.set` per operand slice; the kernel
 * packs panels anyway), runs, and copies C out. The copies cost O(mk + kn + mn) against the O(mnk)
 * product: a few per cent at the sizes that reach this path (see bench/kernels/matmul.ts).
 *
 * The memory is a shared WebAssembly.Memory (its buffer is a SharedArrayBuffer), so a later design could
 * place tensors in it and skip the copies; today every context owns its memory. One context per thread:
 * `defaultWasmGemm()` is per module instance, hence per worker.
 */
import { type GemmFn, type GemmOperands, GemmTeam, GemmTeamError } from "./gemm-team.js";
import type { ResolvedMatmul } from "./matmul-resolve.js";
import type { FloatArray } from "./types.js";
import { GEMM_RELAXED_WASM_BASE64, GEMM_WASM_BASE64 } from "./wasm/gemm-wasm.generated.js";
import { type WasmMemory, type WasmModule, wasmApi } from "./wasm/webassembly-api.js";

type ColumnsExport = (
  from: number,
  C: number,
  H: number,
  W: number,
  KH: number,
  KW: number,
  sh: number,
  sw: number,
  pt: number,
  pl: number,
  dh: number,
  dw: number,
  OH: number,
  OW: number,
  to: number,
) => void;

/** One image's convolution geometry, as im2col/col2im take it. */
export interface ColumnGeometry {
  C: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  pt: number;
  pl: number;
  dh: number;
  dw: number;
  OH: number;
  OW: number;
}

const PAGE = 65536;
// 2 GiB: byte addresses stay below 2³¹, so they survive JavaScript's ToInt32 and signed i32 arithmetic.
// A shared memory reserves its maximum as address space up front; pages are committed only as it grows.
const MAX_PAGES = 32768;

/** Operands staged beyond this many bytes make "auto" choose the JavaScript kernels instead. */
export const WASM_STAGING_LIMIT = 1 << 30;
const WORK = 64; // byte address of the packing scratch

export function align64(x: number): number {
  return (x + 63) & ~63;
}

/**
 * The two builds of the kernels: "simd128" (f64x2/f32x4 mul then add: every supported Node) and
 * "relaxed-simd" (the same kernels with relaxed_madd, fused where the CPU has FMA: Node ≥ 24, where
 * relaxed SIMD is on by default). They round differently, so they are different backends as far as
 * bit-for-bit reproducibility goes (see the README's Choices).
 */
export type WasmKernelKind = "simd128" | "relaxed-simd";

/**
 * Environment setting, read once per thread at first use: "0" keeps the SIMD128 kernels (results
 * bit-identical to Node 20's), "1" asks for the relaxed-SIMD ones; unset or anything else: the default.
 */
export const RELAXED_SIMD_ENV = "ADJOINT_WASM_RELAXED_SIMD";

/**
 * Whether the relaxed kernels are the default where the engine supports them (setting unset). On:
 * on Node 24 x64 (AMD EPYC, FMA3) they run the W3 products 17–20% faster than SIMD128 in f64 and f32
 * (11% on the thin H·W2), measured side by side by bench/kernels/matmul-relaxed.ts; see the README.
 */
export const RELAXED_SIMD_BY_DEFAULT = true;

const cachedModules: { [K in WasmKernelKind]?: WasmModule | null } = {};

/** One compiled build of the kernels, or null where this engine cannot validate it. */
export function gemmModuleOf(kind: WasmKernelKind): WasmModule | null {
  let mod = cachedModules[kind];
  if (mod === undefined) {
    try {
      const base64 = kind === "relaxed-simd" ? GEMM_RELAXED_WASM_BASE64 : GEMM_WASM_BASE64;
      const bytes = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0));
      mod = wasmApi?.validate(bytes) ? new wasmApi.Module(bytes) : null;
    } catch {
      mod = null;
    }
    cachedModules[kind] = mod;
  }
  return mod;
}

/** Whether this engine runs the relaxed-SIMD kernels (WebAssembly.validate on their module). */
export function relaxedSimdSupported(): boolean {
  return gemmModuleOf("relaxed-simd") !== null;
}

/**
 * The selection rule, pure: the setting ("1" on, "0" off, anything else or unset: the default) and,
 * only when it matters, whether the engine supports relaxed SIMD. An unsupported request falls back to
 * SIMD128.
 */
export function chooseWasmKernel(
  setting: string | undefined,
  relaxedSupported: () => boolean,
  relaxedByDefault: boolean = RELAXED_SIMD_BY_DEFAULT,
): WasmKernelKind {
  const wanted = setting === "1" ? true : setting === "0" ? false : relaxedByDefault;
  return wanted && relaxedSupported() ? "relaxed-simd" : "simd128";
}

function envSetting(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[RELAXED_SIMD_ENV]?.trim();
}

let selectedKind: WasmKernelKind | null | undefined;

/**
 * The build this thread's "wasm" backend runs (chosen once, at first use, from ADJOINT_WASM_RELAXED_SIMD
 * and feature detection), or null where the engine has no WebAssembly SIMD at all.
 */
export function wasmKernelKind(): WasmKernelKind | null {
  if (selectedKind === undefined) {
    const kind = chooseWasmKernel(envSetting(), relaxedSimdSupported);
    selectedKind = gemmModuleOf(kind) !== null ? kind : gemmModuleOf("simd128") !== null ? "simd128" : null;
  }
  return selectedKind;
}

/** The compiled kernel module the "wasm" backend uses, or null where this engine lacks WebAssembly SIMD or threads. */
export function gemmModule(): WasmModule | null {
  const kind = wasmKernelKind();
  return kind === null ? null : gemmModuleOf(kind);
}

export function wasmGemmAvailable(): boolean {
  return gemmModule() !== null;
}

/** Helper threads of a context (see gemm-team.ts). */
export interface GemmHelpers {
  /** How many; 0: none. */
  helpers: number;
  /** Whether the owner computes chunks too (false only in tests, so that helpers compute every chunk). */
  ownerClaims?: boolean;
}

export class WasmGemm {
  readonly memory: WasmMemory;
  /** Helpers sharing this memory that split large products with this thread, or null. */
  private team: GemmTeam | null = null;
  private readonly gemm64: GemmFn;
  private readonly gemm32: GemmFn;
  private readonly im2col64: ColumnsExport;
  private readonly im2col32: ColumnsExport;
  private readonly col2im64: ColumnsExport;
  private readonly col2im32: ColumnsExport;
  private readonly stagingBase: number;
  private heap64: Float64Array;
  private heap32: Float32Array;

  constructor(module: WasmModule | null = gemmModule(), helpers: GemmHelpers = { helpers: 0 }) {
    if (module === null || wasmApi === undefined) throw new Error("WebAssembly SIMD is not available in this engine");
    this.memory = new wasmApi.Memory({ initial: 64, maximum: MAX_PAGES, shared: true });
    const instance = new wasmApi.Instance(module, { env: { memory: this.memory } });
    const ex = instance.exports as Record<string, unknown>;
    this.gemm64 = ex["gemm_f64"] as GemmFn;
    this.gemm32 = ex["gemm_f32"] as GemmFn;
    this.im2col64 = ex["im2col_f64"] as ColumnsExport;
    this.im2col32 = ex["im2col_f32"] as ColumnsExport;
    this.col2im64 = ex["col2im_f64"] as ColumnsExport;
    this.col2im32 = ex["col2im_f32"] as ColumnsExport;
    const work = align64(Math.max((ex["work_bytes_f64"] as () => number)(), (ex["work_bytes_f32"] as () => number)()));
    // One packing scratch for this thread at WORK, then one per helper.
    const count = Math.max(0, Math.floor(helpers.helpers));
    this.stagingBase = align64(WORK + work * (1 + count));
    if (count > 0) {
      const works = Array.from({ length: count }, (_, i) => WORK + work * (1 + i));
      this.team = new GemmTeam(module, this.memory, works, helpers.ownerClaims ?? true);
    }
    this.heap64 = new Float64Array(this.memory.buffer);
    this.heap32 = new Float32Array(this.memory.buffer);
  }

  /** Makes sure the memory holds `bytes` bytes; refreshes the views after a grow. */
  reserve(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) {
      const pages = Math.ceil((bytes - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) throw new RangeError("kernel operands exceed the 2 GiB WebAssembly memory");
      this.memory.grow(pages);
    }
    if (this.heap64.byteLength !== this.memory.buffer.byteLength) {
      this.heap64 = new Float64Array(this.memory.buffer);
      this.heap32 = new Float32Array(this.memory.buffer);
    }
  }

  /** Byte address where callers may stage operands (everything below is the packing scratch). */
  get stagingStart(): number {
    return this.stagingBase;
  }

  /** A view of the whole memory with the element type of `like` (valid until the next reserve). */
  heapLike(like: FloatArray): FloatArray {
    return like instanceof Float64Array ? this.heap64 : this.heap32;
  }

  /** gemm over byte addresses in this memory (see wasm/gemm-wat.ts); m, n, k ≥ 1. */
  gemmAt(f64: boolean, ...operands: GemmOperands): void {
    const team = this.team;
    if (team !== null) {
      try {
        if (team.run(this.gemm64, this.gemm32, WORK, f64, ...operands)) return;
      } catch (e) {
        // A helper may still write into this memory: the thread's next product gets a fresh context.
        if (e instanceof GemmTeamError && defaultContext === this) defaultContext = null;
        throw e;
      }
    }
    (f64 ? this.gemm64 : this.gemm32)(...operands, WORK);
  }

  /** Chunks of products computed by this context's helpers so far (0 without helpers). */
  get helpedChunks(): number {
    return this.team?.helped ?? 0;
  }

  /** Stops this context's helpers; later products run on this thread alone. */
  close(): void {
    this.team?.close();
    this.team = null;
  }

  /** im2col (gather = true) or col2im over byte addresses; geometry as in wasm/gemm-wat.ts. */
  convColumns(f64: boolean, gather: boolean, g: ColumnGeometry, from: number, to: number): void {
    const fn = gather ? (f64 ? this.im2col64 : this.im2col32) : f64 ? this.col2im64 : this.col2im32;
    fn(from, g.C, g.H, g.W, g.KH, g.KW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, g.OH, g.OW, to);
  }

  /** Runs a resolved multiply (rows ≥ 1, n ≥ 1, k ≥ 1). */
  run(r: ResolvedMatmul): void {
    const f64 = r.c instanceof Float64Array;
    const E = f64 ? 8 : 4;
    const shift = f64 ? 3 : 2;
    const { rows, n, k, batch, ldc, sa, sb, sc, aSpan, bSpan } = r;
    const cSpan = rows * n; // C is staged compactly, row stride n
    const aPtr = this.stagingBase;
    const bPtr = align64(aPtr + aSpan * E);
    const cPtr = align64(bPtr + bSpan * E);
    this.reserve(cPtr + cSpan * E);
    const heap: FloatArray = f64 ? this.heap64 : this.heap32;
    const a = r.a;
    const b = r.b;
    const c = r.c;
    for (let t = 0; t < batch; t++) {
      const ao = r.ao + t * sa;
      const bo = r.bo + t * sb;
      const co = r.co + t * sc;
      if (t === 0 || sa !== 0) heap.set(a.subarray(ao, ao + aSpan), aPtr >> shift);
      if (t === 0 || sb !== 0) heap.set(b.subarray(bo, bo + bSpan), bPtr >> shift);
      const sumBatches = sc === 0 && batch > 1;
      const beta = t > 0 && sumBatches ? 1 : r.beta;
      if (beta && (t === 0 || !sumBatches)) copyRows(c, co, ldc, heap, cPtr >> shift, n, rows, n);
      this.gemmAt(f64, rows, n, k, aPtr, r.ars, r.acs, bPtr, r.brs, r.bcs, cPtr, n, beta);
      if (!sumBatches || t === batch - 1) copyRows(heap, cPtr >> shift, n, c, co, ldc, rows, n);
    }
  }
}

/** Copies a rows×cols block between row strides; only the block's own elements are written. */
function copyRows(src: FloatArray, so: number, srs: number, dst: FloatArray, d0: number, drs: number, rows: number, cols: number): void {
  if (srs === cols && drs === cols) {
    dst.set(src.subarray(so, so + rows * cols), d0);
    return;
  }
  if (cols >= 16) {
    for (let i = 0; i < rows; i++) dst.set(src.subarray(so + i * srs, so + i * srs + cols), d0 + i * drs);
    return;
  }
  for (let i = 0; i < rows; i++) {
    const s = so + i * srs;
    const d = d0 + i * drs;
    for (let j = 0; j < cols; j++) dst[d + j] = src[s + j];
  }
}

let defaultContext: WasmGemm | null = null;
let defaultHelpers = 0;

/**
 * This thread's kernel context (created on first use). Its memory grows to the largest operands seen
 * and never shrinks (WebAssembly memories cannot); see releaseWasmGemm.
 */
export function defaultWasmGemm(): WasmGemm {
  if (defaultContext === null) defaultContext = new WasmGemm(gemmModule(), { helpers: defaultHelpers });
  return defaultContext;
}

/**
 * How many helper threads this thread's context splits large products with (gemm-team.ts); 0, the
 * default, computes every product on the calling thread. Takes effect with the next context: a
 * context already made is closed.
 */
export function useGemmHelpers(helpers: number): void {
  defaultHelpers = Math.max(0, Math.floor(helpers));
  releaseWasmGemm();
}

/**
 * Drops this thread's context, so that its memory can be collected after a very large product; the
 * next call makes a fresh one (a millisecond or so: the module stays compiled).
 */
export function releaseWasmGemm(): void {
  defaultContext?.close();
  defaultContext = null;
}

/** Chunks of products this thread's helpers computed in its current context (0 without one). */
export function gemmHelpedChunks(): number {
  return defaultContext?.helpedChunks ?? 0;
}

/** Bytes of WebAssembly memory this thread's context holds now (0 before its first use). */
export function wasmGemmMemoryBytes(): number {
  return defaultContext === null ? 0 : defaultContext.memory.buffer.byteLength;
}
