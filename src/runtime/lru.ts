/** A byte budget for an LruMap: the most estimated bytes it keeps, and how an entry is weighed. */
export interface ByteBudget<V> {
  readonly maxBytes: number;
  /** An entry's estimated bytes; asked again by `reweigh` when the entry may have grown. */
  readonly weigh: (value: V) => number;
}

interface Slot<V> {
  value: V;
  used: boolean;
  bytes: number;
}

/**
 * A Map that keeps at most `capacity` entries, and, with a byte budget, at most that many estimated
 * bytes, dropping entries not used recently ("second chance", the CLOCK approximation of
 * least-recently-used): a hit only sets a flag, so lookups on the hot path do not reorder the map; an
 * eviction moves flagged entries to the back and drops the first unflagged one. An entry that alone
 * weighs more than the budget is not kept at all: holding it would mean holding nothing else.
 */
export class LruMap<K, V> {
  private readonly map = new Map<K, Slot<V>>();
  private total = 0;

  constructor(
    readonly capacity: number,
    private readonly budget?: ByteBudget<V>,
  ) {
    if (!(capacity >= 1)) throw new RangeError("an LRU needs a capacity of at least 1");
    if (budget !== undefined && !(budget.maxBytes >= 1)) throw new RangeError("an LRU's byte budget must be at least 1");
  }

  get size(): number {
    return this.map.size;
  }

  /** Estimated bytes of the entries kept (0 without a budget). */
  get bytes(): number {
    return this.total;
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
    const bytes = this.budget ? this.budget.weigh(value) : 0;
    if (slot !== undefined) {
      slot.value = value;
      slot.used = true;
      this.resize(key, slot, bytes);
      return;
    }
    if (this.budget && bytes > this.budget.maxBytes) return;
    while (this.map.size >= this.capacity || (this.budget && this.map.size > 0 && this.total + bytes > this.budget.maxBytes)) this.evict();
    this.map.set(key, { value, used: false, bytes });
    this.total += bytes;
  }

  /**
   * Weighs an entry again (it may have grown: a compiled function gains a program per mode) and evicts
   * others, or the entry itself if it alone is over the budget, to stay within it.
   */
  reweigh(key: K): void {
    if (this.budget === undefined) return;
    const slot = this.map.get(key);
    if (slot !== undefined) this.resize(key, slot, this.budget.weigh(slot.value));
  }

  /** The entries kept, oldest first (reading them does not count as a use). */
  *entries(): IterableIterator<[K, V]> {
    for (const [key, slot] of this.map) yield [key, slot.value];
  }

  delete(key: K): boolean {
    const slot = this.map.get(key);
    if (slot === undefined) return false;
    this.map.delete(key);
    this.total -= slot.bytes;
    return true;
  }

  private resize(key: K, slot: Slot<V>, bytes: number): void {
    if (bytes === slot.bytes || this.budget === undefined) return;
    this.total += bytes - slot.bytes;
    slot.bytes = bytes;
    if (bytes > this.budget.maxBytes) {
      this.delete(key);
      return;
    }
    // The grown entry was just used: it is flagged, so the sweep passes over it before dropping it.
    slot.used = true;
    while (this.total > this.budget.maxBytes && this.map.size > 1) this.evict();
  }

  private evict(): void {
    for (const [key, slot] of this.map) {
      this.map.delete(key);
      if (!slot.used) {
        this.total -= slot.bytes;
        return;
      }
      slot.used = false;
      this.map.set(key, slot);
    }
  }
}
