import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

/**
 * tfjs in Node, both backends, float32: "cpu" (plain JavaScript kernels) and "wasm" (XNNPACK, SIMD,
 * one thread here). The .wasm files are loaded from node_modules by file path: no network.
 * Contenders switch backends in their untimed `before` hook; each keeps its own tensors per backend
 * so that no data moves between backends inside a timed call.
 */
export type Backend = "cpu" | "wasm";
export const BACKENDS: readonly Backend[] = ["cpu", "wasm"];

let ready: Promise<typeof tf> | undefined;

export function loadTf(): Promise<typeof tf> {
  ready ??= (async () => {
    // Production mode: no debug checks, and no "install tfjs-node" banner.
    tf.enableProdMode();
    const require = createRequire(import.meta.url);
    const dir = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"));
    setWasmPaths(`${dir}${path.sep}`);
    for (const b of BACKENDS) if (!(await tf.setBackend(b))) throw new Error(`tfjs backend ${b} failed to start`);
    return tf;
  })();
  return ready;
}

/** Switches the backend if needed (cheap once both are initialised). */
export async function useBackend(backend: Backend): Promise<void> {
  if (tf.getBackend() !== backend) await tf.setBackend(backend);
}

/** Per-backend lazily built state, created while that backend is active. */
export function perBackend<T>(make: () => T): (backend: Backend) => T {
  const made = new Map<Backend, T>();
  return (backend) => {
    let v = made.get(backend);
    if (v === undefined) {
      v = make();
      made.set(backend, v);
    }
    return v;
  };
}

export { tf };

/** tf.tidy for a callback that returns plain numbers: every tensor made inside is disposed. */
export function tidyValue<T>(fn: () => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    out = fn();
  });
  return out as T;
}
