/** A record as the engine builds one: own keys set one by one, so that `__proto__` is a key, not a prototype. */
export function record(entries: [string, unknown][]): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(r, k, { value: v, enumerable: true, writable: true, configurable: true });
  return r;
}
