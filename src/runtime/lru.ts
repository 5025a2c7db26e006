/**
 * A Map that keeps at most `capacity` entries, dropping one not used recently ("second chance", the
 * CLOCK approximation of least-recently-used): a hit only sets a flag, so lookups on the hot path do
 * not reorder the map; an eviction moves flagged entries to the back and drops the first unflagged one.
 */
export class LruMap<K, V> {
  private readonly map = new Map<K, { value: V; used: boolean }>();

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError("an LRU needs a capacity of at least 1");
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    const slot = this.map.get(key);
    if (slot === undefined) return undefined;
    slot.used = true;
    return slot.value;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): void {
    const slot = this.map.get(key);
    if (slot !== undefined) {
      slot.value = value;
      slot.used = true;
      return;
    }
    if (this.map.size >= this.capacity) this.evict();
    this.map.set(key, { value, used: false });
  }

  private evict(): void {
    for (const [key, slot] of this.map) {
      this.map.delete(key);
      if (!slot.used) return;
      slot.used = false;
      this.map.set(key, slot);
    }
  }
}
