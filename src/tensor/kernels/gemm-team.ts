/**
 * One large WebAssembly gemm split across helper threads that share the kernel's memory.
 *
 * A thread that owns a WasmGemm (a pool worker) may start helpers: each instantiates the same compiled
 * module over the same shared WebAssembly.Memory and has its own packing scratch there. The owner stages
 * the operands once, as it always does; a large product is then cut into chunks of rows or of columns of
 * C, which the owner and the helpers claim one at a time from a shared counter and compute in place. Only
 * numbers cross between the threads (byte addresses in the memory all of them see), through one small
 * Int32Array: no message, no copy.
 *
 * Why it helps: a service answering one large request at a time leaves a core idle while its worker
 * computes. Why it costs little when the cores are busy: the owner computes too and takes whatever chunk
 * is still unclaimed, so a helper that is not scheduled simply takes none; the owner waits only for a
 * chunk a helper has begun.
 *
 * Why the bits do not change: every element of C is the sum over the shared dimension in increasing
 * order, and the kernels pad partial tiles with zeros to whole register tiles (wasm/gemm-wat.ts), so an
 * element's value does not depend on which rows or columns are computed beside it. A split answer equals
 * the unsplit one bit for bit; the tests check it.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { DEFAULT_VARIANTS } from "./wasm/gemm-wat.js";
import type { WasmMemory, WasmModule } from "./wasm/webassembly-api.js";

/** A product is split only from this many multiply-adds (m·n·k): about 0.1 ms of one thread's work. */
export const TEAM_MIN_WORK = 1 << 21;
/** Chunks aim at no less than this many multiply-adds each, so that a chunk is worth a claim. */
const CHUNK_MIN_WORK = 1 << 20;
/** Chunks per thread of the team: more balance when a helper starts late, at one more packing of the shared operand each. */
const CHUNKS_PER_THREAD = 2;
/** How long the owner waits for a helper's chunk without any progress before it stops using helpers. */
const STALL_MS = 5000;

/** Slots of the control array. */
const GEN = 0; // job number; helpers sleep on it
const CLAIM = 1; // (job number & 0x7fffff) << 8 | next unclaimed chunk
const DONE = 2; // chunks finished in the current job
const FAILED = 3; // a chunk threw
const HELPED = 4; // chunks computed by helpers, all jobs (a count for tests and benchmarks)
const STOP = 5;
const JOB = 8; // the job: f64, m, n, k, a, ars, acs, b, brs, bcs, c, ldc, beta, byRows, chunks, step
const JOB_FIELDS = 16;
export const CONTROL_SLOTS = JOB + JOB_FIELDS;

/** A team that cannot finish a product: the product is not computed and the kernel memory is not to be reused. */
export class GemmTeamError extends Error {}

/**
 * One product as the kernels take it: C (m×n, row stride ldc) = op(A)·op(B), plus C where beta is 1, with
 * op(A)[i, p] at byte address a + (i·ars + p·acs)·size and op(B)[p, j] at b + (p·brs + j·bcs)·size.
 */
export type GemmOperands = [
  m: number,
  n: number,
  k: number,
  a: number,
  ars: number,
  acs: number,
  b: number,
  brs: number,
  bcs: number,
  c: number,
  ldc: number,
  beta: number,
];

/** The kernel export both sides call: gemm_T(...operands, work), `work` the caller's packing scratch. */
export type GemmFn = (...args: [...GemmOperands, work: number]) => void;

/** What a helper thread is started with (its workerData). */
export interface HelperData {
  module: WasmModule;
  memory: WasmMemory;
  control: SharedArrayBuffer;
  /** Byte address of this helper's packing scratch. */
  work: number;
}

const claimWord = (gen: number, next: number) => ((gen & 0x7fffff) << 8) | next;

/**
 * Claims chunks of job `gen` and computes them until none is left unclaimed; the owner and every
 * helper run this same loop. The job's fields are read before the first claim: a claim that succeeds
 * under `gen` proves the job was still current, so the fields read were its own (the owner rewrites
 * them only after every chunk of a job is done). A helper's chunks are also counted in HELPED.
 */
export function claimChunks(control: Int32Array, gen: number, gemm64: GemmFn, gemm32: GemmFn, work: number, helper: boolean): void {
  const job = Array.from({ length: JOB_FIELDS }, (_, i) => Atomics.load(control, JOB + i));
  const [f64, m, n, k, a, ars, acs, b, brs, bcs, c, ldc, beta, byRows, chunks, step] = job;
  const E = f64 === 1 ? 8 : 4;
  const gemm = f64 === 1 ? gemm64 : gemm32;
  for (;;) {
    const word = Atomics.load(control, CLAIM);
    const next = word & 0xff;
    if (word >>> 8 !== (gen & 0x7fffff) || next >= chunks) return;
    if (Atomics.compareExchange(control, CLAIM, word, word + 1) !== word) continue;
    // Chunk `next` is rows [from, from + span) of C and of op(A), or columns of C and of op(B).
    const from = next * step;
    const span = Math.min(step, (byRows === 1 ? m : n) - from);
    try {
      if (byRows === 1) gemm(span, n, k, a + from * ars * E, ars, acs, b, brs, bcs, c + from * ldc * E, ldc, beta, work);
      else gemm(m, span, k, a, ars, acs, b + from * bcs * E, brs, bcs, c + from * E, ldc, beta, work);
    } catch {
      Atomics.store(control, FAILED, 1);
    }
    // Counted before the chunk is reported done, so that the owner's count is whole when its product is.
    if (helper) Atomics.add(control, HELPED, 1);
    Atomics.add(control, DONE, 1);
    Atomics.notify(control, DONE);
  }
}

/** A helper thread's life: sleep until a job is posted, take part in it, repeat until told to stop. */
export function helperLoop(control: Int32Array, gemm64: GemmFn, gemm32: GemmFn, work: number): void {
  // Job numbers start at 1: a job posted while this thread was starting is joined (or found finished).
  let seen = 0;
  for (;;) {
    if (Atomics.load(control, STOP) === 1) return;
    const gen = Atomics.load(control, GEN);
    if (gen === seen) {
      Atomics.wait(control, GEN, seen);
      continue;
    }
    seen = gen;
    claimChunks(control, gen, gemm64, gemm32, work, true);
  }
}

function helperFile(): string {
  // Beside this module once built; from the sources (tests), the built copy.
  const candidates = [
    new URL("./gemm-helper.js", import.meta.url),
    new URL("../../../dist/src/tensor/kernels/gemm-helper.js", import.meta.url),
  ];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(path)) return path;
  }
  throw new Error("the gemm helper dist/src/tensor/kernels/gemm-helper.js is missing: run `npm run build` first");
}

const tileOf = (type: "f64" | "f32") => DEFAULT_VARIANTS.find((v) => v.type === type) ?? { mr: 1, nr: 1 };
const TILES = { f64: tileOf("f64"), f32: tileOf("f32") };

/**
 * How to cut a product of m×n×k for a team of `threads`, or null where it is not worth cutting. Cuts
 * fall on whole register tiles, so that no chunk computes padding an unsplit run would not.
 */
export function planChunks(f64: boolean, m: number, n: number, k: number, threads: number) {
  const total = m * n * k;
  if (threads < 2 || total < TEAM_MIN_WORK) return null;
  // Cutting rows packs all of B for each chunk, cutting columns all of A: cut along the longer side of C.
  const byRows = m >= n;
  const extent = byRows ? m : n;
  const { mr, nr } = f64 ? TILES.f64 : TILES.f32;
  const align = byRows ? mr : nr;
  const wanted = Math.min(threads * CHUNKS_PER_THREAD, Math.floor(total / CHUNK_MIN_WORK), 255);
  const step = Math.ceil(Math.ceil(extent / wanted) / align) * align;
  const chunks = Math.ceil(extent / step);
  return chunks < 2 ? null : { byRows, step, chunks };
}

/**
 * The owner's side: its helpers and the control array they share. Single-threaded use by the owner
 * (one job at a time, from the thread that made it).
 */
export class GemmTeam {
  private readonly control: Int32Array;
  private readonly helpers: Worker[] = [];
  private gen = 0;
  private broken = false;

  /**
   * @param works byte addresses of the helpers' packing scratch areas, one per helper
   * @param ownerClaims whether the owner computes chunks too (false only in tests, to make helpers do every chunk)
   */
  constructor(
    module: WasmModule,
    memory: WasmMemory,
    works: readonly number[],
    private readonly ownerClaims = true,
  ) {
    const shared = new SharedArrayBuffer(CONTROL_SLOTS * 4);
    this.control = new Int32Array(shared);
    const file = helperFile();
    for (const work of works) {
      const data: HelperData = { module, memory, control: shared, work };
      const helper = new Worker(file, {
        workerData: data,
        // A helper allocates almost nothing of its own: the operands are in the shared memory.
        resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
        stdout: false,
        stderr: false,
      });
      // It never keeps its owner alive, and dies with it.
      helper.unref();
      helper.on("error", () => {
        this.broken = true;
      });
      this.helpers.push(helper);
    }
  }

  /** Threads that may compute a job: the owner and its helpers. */
  get threads(): number {
    return this.helpers.length + 1;
  }

  /** Chunks computed by helpers since the team started. */
  get helped(): number {
    return Atomics.load(this.control, HELPED);
  }

  /**
   * Computes the product with the team, or returns false (having done nothing) where it is too small to
   * split or the team no longer works, for the caller to compute it alone.
   */
  run(gemm64: GemmFn, gemm32: GemmFn, work: number, f64: boolean, ...operands: GemmOperands): boolean {
    if (this.broken) return false;
    const [m, n, k] = operands;
    const plan = planChunks(f64, m, n, k, this.threads);
    if (plan === null) return false;
    const control = this.control;
    const fields = [f64 ? 1 : 0, ...operands, plan.byRows ? 1 : 0, plan.chunks, plan.step];
    for (let i = 0; i < JOB_FIELDS; i++) Atomics.store(control, JOB + i, fields[i]);
    this.gen = (this.gen + 1) | 0;
    Atomics.store(control, FAILED, 0);
    Atomics.store(control, DONE, 0);
    Atomics.store(control, CLAIM, claimWord(this.gen, 0));
    Atomics.store(control, GEN, this.gen);
    Atomics.notify(control, GEN);
    if (this.ownerClaims) claimChunks(control, this.gen, gemm64, gemm32, work, false);
    for (;;) {
      const done = Atomics.load(control, DONE);
      if (done >= plan.chunks) break;
      if (Atomics.wait(control, DONE, done, STALL_MS) === "timed-out" && Atomics.load(control, DONE) === done) {
        // A helper holds a chunk and makes no progress (a thread that died, or one starved for seconds).
        // Its late writes could land in a later product's memory, so neither the team nor that memory
        // may be used again: the caller drops both.
        this.close();
        throw new GemmTeamError("a matmul helper thread stalled; the product was not computed");
      }
    }
    if (Atomics.load(control, FAILED) === 1) {
      // A chunk threw (on whichever thread): C may be partly written or accumulated.
      this.close();
      throw new GemmTeamError("a chunk of a matmul split across threads failed; the product was not computed");
    }
    return true;
  }

  /** Stops the helpers (they are also stopped when the owning thread exits). */
  close(): void {
    this.broken = true;
    Atomics.store(this.control, STOP, 1);
    Atomics.store(this.control, GEN, (this.gen + 1) | 0);
    Atomics.notify(this.control, GEN);
    for (const helper of this.helpers) void helper.terminate();
  }
}
