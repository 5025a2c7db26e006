/**
 * One signal for pool work, fired by a time limit or by any of `sources` (the client's signal, a
 * failure elsewhere), taken apart by `release` once the work is over.
 *
 * Not AbortSignal.timeout and AbortSignal.any: Node ties their signals together, and to the pending
 * timer, with WeakRefs, which young-generation collections treat as strong (only a full collection
 * clears them). Until the time limit passed, long after the answer, whatever listened to them stayed
 * reachable to those collections: the pool's task, and through it the request. A training step's
 * megabytes over gRPC (the message grpc-js assembled, the answer) were promoted and went back only at
 * a full collection, one on the event loop every dozen steps (10 ms of pause and 15 of incremental
 * marking each); with the signals made here, none in the same run.
 */
export interface StopSignal {
  readonly signal: AbortSignal;
  /** Whether it was the time limit that fired. */
  readonly timedOut: () => boolean;
  /** Clears the timer and stops listening to the sources; call it once the work has settled. */
  readonly release: () => void;
}

/** Node fires a timer set past 2³¹ − 1 ms after 1 ms: a longer limit is held to this (24.8 days). */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

export function stopSignal(limitMs: number, ...sources: (AbortSignal | undefined)[]): StopSignal {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(
    () => {
      timedOut = true;
      controller.abort(new DOMException("the time limit passed", "TimeoutError"));
    },
    Math.min(Math.max(1, limitMs), LONGEST_TIMER_MS),
  );
  timer.unref();
  const listening: [AbortSignal, () => void][] = [];
  const release = () => {
    clearTimeout(timer);
    for (const [source, forward] of listening) source.removeEventListener("abort", forward);
    listening.length = 0;
  };
  // Fired once, it needs neither the timer nor the other sources.
  controller.signal.addEventListener("abort", release, { once: true });
  for (const source of sources) {
    if (source === undefined) continue;
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    const forward = () => controller.abort(source.reason);
    source.addEventListener("abort", forward, { once: true });
    listening.push([source, forward]);
  }
  return { signal: controller.signal, timedOut: () => timedOut, release };
}
