import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * Hands garbage back after a burst. A burst of large requests (bodies and answers are Buffers,
 * outside the JavaScript heap) or of large functions (graphs parsed and derived) leaves hundreds of MB
 * that are dead but still resident: V8 collects when JavaScript allocates, and an idle service
 * allocates nothing. Once a second this looks at the memory its thread holds (heap and buffers); when
 * the thread is idle and holds more than `slackBytes` above the least it has held, it runs a full
 * collection (tens of milliseconds on this service's small heaps). Idle means nothing in flight and at
 * most a trickle begun since the previous look (`trickle`: a health probe, a client polling): under
 * steady load of short requests the in-flight count is often zero when a timer fires, and a full
 * collection then stalled every request arriving during it (14–89 ms, measured mid-load). A trickle
 * loses one request's tens of ms once, where waiting for a look with nothing begun at all kept a
 * burst's garbage resident for as long as anyone polled. Backing stores are freed after the collection
 * returns, so its effect is read a tick later: a collection that freed little (the memory is live, say caches)
 * doubles the wait before the next one, up to a minute, unless more memory is taken since. Workers give their memory back by being
 * replaced (workers/differentiate.ts).
 */
export interface StewardOptions {
  /** How far above the least it has held the thread may hold before a collection is worth trying. */
  readonly slackBytes?: number;
  /** The wait between collections, doubled after one that freed little, up to the maximum. */
  readonly minIntervalMs?: number;
  readonly maxIntervalMs?: number;
  /** The most work begun between two looks (a second apart) that still leaves the thread idle. */
  readonly trickle?: number;
  /** What the thread holds now; by default its heap and the buffers outside it. */
  readonly held?: () => number;
}

export class MemorySteward {
  private readonly collect: () => void;
  private timer: NodeJS.Timeout | undefined;
  /** The least memory held outside the heap seen so far: the service's working size. */
  private floor: number;
  private interval: number;
  private lastCollection = Number.NEGATIVE_INFINITY;
  /** What was held when the last collection ran, until its effect has been read. */
  private before: number | undefined;
  /** What a collection that freed little left: the backoff holds only while memory stays near it. */
  private stuckAt = Number.POSITIVE_INFINITY;
  /** The traffic count at the last collection. */
  private trafficAt = 0;
  /** The activity count at the previous look. */
  private activityAt: number;

  private readonly slackBytes: number;
  private readonly minIntervalMs: number;
  private readonly maxIntervalMs: number;
  private readonly trickle: number;
  private readonly held: () => number;

  /**
   * `idle`: nothing in flight now; `activity`: a running count of work begun (requests, tasks);
   * `traffic`: a running count of bytes received, that much new since a collection makes another worth trying soon.
   */
  constructor(
    private readonly idle: () => boolean,
    private readonly activity: () => number,
    private readonly traffic: () => number = () => 0,
    options: StewardOptions = {},
  ) {
    this.slackBytes = options.slackBytes ?? 48 * 1024 * 1024;
    this.minIntervalMs = options.minIntervalMs ?? 2000;
    this.maxIntervalMs = options.maxIntervalMs ?? 60_000;
    this.trickle = options.trickle ?? 25;
    this.held = options.held ?? heldBytes;
    this.collect = exposedGc();
    this.activityAt = activity();
    this.floor = this.held();
    this.interval = this.minIntervalMs;
  }

  start(): this {
    this.timer = setInterval(() => this.check(), 1000);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One look; true when it collected. */
  check(now = Date.now()): boolean {
    const held = this.held();
    const activity = this.activity();
    const quiet = activity - this.activityAt <= this.trickle;
    this.activityAt = activity;
    if (this.before !== undefined) {
      const freed = this.before - held;
      const useful = freed > this.slackBytes / 2;
      this.interval = useful ? this.minIntervalMs : Math.min(2 * this.interval, this.maxIntervalMs);
      this.stuckAt = useful ? Number.POSITIVE_INFINITY : held;
      this.before = undefined;
    } else if (held > this.stuckAt + this.slackBytes || this.traffic() - this.trafficAt > this.slackBytes) {
      // New memory, or a burst of requests, since the collection that found everything live: what was
      // live then (a burst in progress) may be garbage now, so look again soon.
      this.interval = this.minIntervalMs;
      this.stuckAt = Number.POSITIVE_INFINITY;
    }
    this.floor = Math.min(this.floor, held);
    if (held - this.floor <= this.slackBytes || now - this.lastCollection < this.interval || !quiet || !this.idle()) return false;
    this.collect();
    this.lastCollection = now;
    this.trafficAt = this.traffic();
    this.before = held;
    return true;
  }
}

/** What this thread holds: its heap, and the buffers outside it (as the thread's own V8 counts them). */
function heldBytes(): number {
  const heap = getHeapStatistics();
  return heap.used_heap_size + heap.external_memory;
}

/**
 * V8's full collection. Started with --expose-gc it is global; otherwise the flag is set now and the
 * function taken from a fresh context, as jest's leak detector does.
 */
function exposedGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === "function") return existing;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/**
 * V8's flag that counts memory outside the heap (Buffers, ArrayBuffers) in the heap's own growing
 * limit rather than against a fixed allowance of its own. Without it, V8 13 (Node 24) starts a full
 * collection on the event loop whenever some 64 MB of buffers were made since the last one, dead or
 * alive, and no longer collects them young: over gRPC, where grpc-js assembles each message and frames
 * each answer in fresh memory (about 8 MB a training step), that was a Mark-Compact every nine steps
 * (8–10 ms of pause and 12–26 of incremental marking each). With it, one every twenty-five, and about 12 % more
 * steps a second (alternating runs, one process, `h2load -c1 -m1`). V8 11 (Node 20) has no such flag,
 * and collects those buffers young already.
 */
export const EXTERNAL_MEMORY_IN_GLOBAL_LIMIT = "--external-memory-accounted-in-global-limit";

/** Whether this V8 takes EXTERNAL_MEMORY_IN_GLOBAL_LIMIT (V8 13 and later). */
export function takesExternalMemoryInGlobalLimit(v8Version = process.versions.v8): boolean {
  return Number(v8Version.split(".")[0]) >= 13;
}

/** Sets EXTERNAL_MEMORY_IN_GLOBAL_LIMIT where V8 takes it (before the pool's workers start: V8's flags are the process's); whether it did. */
export function countExternalMemoryInGlobalLimit(): boolean {
  if (!takesExternalMemoryInGlobalLimit()) return false;
  setFlagsFromString(EXTERNAL_MEMORY_IN_GLOBAL_LIMIT);
  return true;
}
