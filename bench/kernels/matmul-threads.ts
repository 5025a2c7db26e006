/**
 * One matmul split by rows over worker threads sharing SharedArrayBuffers: the pattern the worker pool
 * will use (each worker calls matmul with its own rowStart/rowEnd on the same shared operands). Reports
 * the time inline, on one worker, and split over two, and checks the split result is bitwise equal.
 *
 *   npm run build && node dist/bench/kernels/matmul-threads.js
 *
 * Workers wait on Atomics, so dispatch costs microseconds, not a message round trip.
 */
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { type FloatArray, matmul } from "../../src/tensor/kernels/index.js";

interface Job {
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  f64: boolean;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

// ctrl: [generation, done count, rowStart, rowEnd] per worker slot (slot w at 4 + 4w).
function views(job: Job): { a: FloatArray; b: FloatArray; c: FloatArray } {
  const { m, n, k } = job;
  const mk = (off: number, len: number): FloatArray =>
    job.f64 ? new Float64Array(job.data, off * 8, len) : new Float32Array(job.data, off * 4, len);
  return { a: mk(0, m * k), b: mk(m * k, k * n), c: mk(m * k + k * n, m * n) };
}

function workerMain(): void {
  const { job, slot } = workerData as { job: Job; slot: number };
  const ctrl = new Int32Array(job.ctrl);
  const { a, b, c } = views(job);
  let gen = 0;
  parentPort!.postMessage("ready");
  for (;;) {
    Atomics.wait(ctrl, 0, gen);
    gen = Atomics.load(ctrl, 0);
    if (gen < 0) return;
    const r0 = ctrl[4 + 4 * slot];
    const r1 = ctrl[5 + 4 * slot];
    if (r1 > r0) matmul({ m: job.m, n: job.n, k: job.k, a, b, c, transA: job.transA, transB: job.transB, rowStart: r0, rowEnd: r1 });
    Atomics.add(ctrl, 1, 1);
    Atomics.notify(ctrl, 1);
  }
}

async function run(f64: boolean, m: number, n: number, k: number, transA: boolean, transB: boolean): Promise<string> {
  const E = f64 ? 8 : 4;
  const job: Job = {
    ctrl: new SharedArrayBuffer(64),
    data: new SharedArrayBuffer((m * k + k * n + m * n) * E),
    f64,
    m,
    n,
    k,
    transA,
    transB,
  };
  const { a, b, c } = views(job);
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(i);
  for (let i = 0; i < b.length; i++) b[i] = Math.cos(i);
  const ctrl = new Int32Array(job.ctrl);
  const here = fileURLToPath(import.meta.url);
  const workers = [0, 1].map((slot) => new Worker(here, { workerData: { job, slot } }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));

  const dispatch = (ranges: [number, number][]) => {
    for (let w = 0; w < 2; w++) {
      ctrl[4 + 4 * w] = ranges[w][0];
      ctrl[5 + 4 * w] = ranges[w][1];
    }
    Atomics.store(ctrl, 1, 0);
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    for (let done = Atomics.load(ctrl, 1); done < 2; done = Atomics.load(ctrl, 1)) Atomics.wait(ctrl, 1, done);
  };
  const half = Math.ceil(m / 2 / 8) * 8;
  const time = (f: () => void) => {
    for (let i = 0; i < 5; i++) f();
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 40; i++) {
      const t = performance.now();
      f();
      best = Math.min(best, performance.now() - t);
    }
    return best;
  };
  const inline = time(() => matmul({ m, n, k, a, b, c, transA, transB }));
  const whole = Array.from(c);
  const one = time(() =>
    dispatch([
      [0, m],
      [0, 0],
    ]),
  );
  c.fill(0);
  const two = time(() =>
    dispatch([
      [0, half],
      [half, m],
    ]),
  );
  const same = Array.from(c).every((v, i) => Object.is(v, whole[i]));
  ctrl[0] = -1;
  Atomics.notify(ctrl, 0);
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("exit", resolve))));
  const gf = (ms: number) => ((2 * m * n * k) / ms / 1e6).toFixed(1);
  return `${f64 ? "f64" : "f32"} ${m}x${n}x${k}${transA ? "ᵀA" : ""}${transB ? "ᵀB" : ""}: inline ${inline.toFixed(2)} ms (${gf(inline)} GFLOP/s), one worker ${one.toFixed(2)} ms, two workers ${two.toFixed(2)} ms (${gf(two)} GFLOP/s, ×${(inline / two).toFixed(2)}); split bitwise equal: ${same}`;
}

if (isMainThread) {
  for (const f64 of [true, false]) {
    console.log(await run(f64, 128, 256, 784, false, false));
    console.log(await run(f64, 784, 256, 128, true, false));
  }
} else {
  workerMain();
}
