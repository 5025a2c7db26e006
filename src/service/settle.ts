/**
 * `then` and `finally` for work whose result may be ready at once: `next` is applied to the result now,
 * or once the promise fulfils, and `cleanup` runs exactly once either way: after `next` (after the
 * promise it returns settles, if it returns one), or on a failure (a throw now, a rejection later). A
 * result made at once stays free of promises, which cost the smallest requests more than their
 * evaluation (service.differentiateEncoded, the HTTP route).
 */
export function thenFinally<T, R>(work: () => T | Promise<T>, next: (result: T) => R | Promise<R>, cleanup: () => void): R | Promise<R> {
  let result: T | Promise<T>;
  try {
    result = work();
  } catch (e) {
    cleanup();
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (later) => applyThenClean(next, later, cleanup),
      (e: unknown) => {
        cleanup();
        throw e;
      },
    );
  }
  return applyThenClean(next, result, cleanup);
}

function applyThenClean<T, R>(next: (result: T) => R | Promise<R>, result: T, cleanup: () => void): R | Promise<R> {
  let applied: R | Promise<R>;
  try {
    applied = next(result);
  } catch (e) {
    cleanup();
    throw e;
  }
  if (applied instanceof Promise) return applied.finally(cleanup);
  cleanup();
  return applied;
}
