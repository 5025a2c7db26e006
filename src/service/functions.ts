import { createHash } from "node:crypto";
import { CompiledFunction } from "../engine/compiled-function.js";
import { AdjointError, invalid, listed } from "../errors.js";
import type { ExpressionSource } from "../ir/expression.js";
import type { Graph } from "../ir/graph.js";
import { decodeGraph } from "../ir/graph-codec.js";
import { contentHash } from "../ir/hash.js";
import { compileModel, type ModelDefinition, type ParameterSpec } from "../ir/model.js";
import { checkName } from "../names.js";
import { errorFromData } from "../runtime/batch.js";
import { encodeDefinition, type FunctionSource } from "../runtime/definition.js";
import { LruMap } from "../runtime/lru.js";
import {
  checkNodeCount,
  encodedConstant,
  expressionChars,
  largeJsonGraph,
  located,
  type ParseTask,
  POOL_PARSE_CHARS,
  type PrebuiltGraph,
  parseFunction,
  readGraph,
  SOURCES,
  sourceKey,
} from "../runtime/parse-function.js";
import { graphWork } from "../runtime/scheduler.js";
import { RetryableError } from "./errors.js";
import { DecodeContext, decodeTensor } from "./tensor.js";
import type { FunctionInfo, FunctionSpec, InputDecl, TensorValue } from "./types.js";

/** A function the service knows: compiled (programs are built lazily, per mode, and kept) and shareable with workers. */
export class FunctionEntry {
  private shared: SharedArrayBuffer | undefined;
  /** Mode plans by their settings (see modes.ts), so that a repeated request plans nothing. */
  readonly plans = new LruMap<string, unknown>(64);
  /** Units of work per sweep, for the scheduler. */
  readonly work: number;

  constructor(
    readonly fn: CompiledFunction,
    /** What `wrt` means when a request leaves it out: a model's parameters; else every float input. */
    readonly defaultWrt?: readonly string[],
    /** For a model: its definition and the batch size this graph was built for (so it can be sharded). */
    readonly model?: { readonly definition: ModelDefinition; readonly batch: number; readonly parameters: readonly ParameterSpec[] },
    /** What workers rebuild the function from (runtime/definition.ts): the graph unless given. */
    private readonly source: FunctionSource = { graph: fn.graph },
  ) {
    this.work = graphWork(fn.graph);
  }

  get hash(): string {
    return this.fn.hash;
  }

  /** The definition in shared memory for pool tasks, serialised on first use. */
  get definition(): SharedArrayBuffer {
    this.shared ??= encodeDefinition(this.source);
    return this.shared;
  }

  /** Estimated bytes held: the compiled function (graphs, programs) and its shared definition. */
  estimatedBytes(): number {
    return this.fn.estimatedBytes() + (this.shared?.byteLength ?? 0);
  }

  info(): FunctionInfo {
    const g = this.fn.graph;
    const spec = (n: { name: string; node: number }) => ({ name: n.name, shape: [...g.nodes[n.node].shape], dtype: g.nodes[n.node].dtype });
    return { id: this.hash, inputs: g.inputs.map(spec), outputs: g.outputs.map(spec), nodeCount: g.size, opCount: g.opCount };
  }
}

export interface StoreLimits {
  readonly maxNodes: number;
  readonly cacheSize: number;
  readonly registrySize: number;
  /** Estimated bytes kept by the compiled cache, and by the registry (each). */
  readonly cacheBytes?: number;
}

export interface CacheEvents {
  hit(cache: "source" | "compiled" | "registry"): void;
  miss(cache: "source" | "compiled" | "registry"): void;
}

/** What the function store asks of the other processes of a cluster (cluster/member.ts), with which it shares registered ids. */
export interface SharedRegistry {
  /** The definition registered under `id` on any process, if it is still kept. */
  recall(id: string): FunctionSpec | undefined;
  /** Makes `id` known to every process; resolves once all of them keep it. */
  publish(id: string, spec: FunctionSpec, bytes: number): Promise<void>;
}

/** Why a request's parse on the pool may fail that says nothing of the function (with a busy pool, RetryableError). */
const CALL_ERRORS: ReadonlySet<string> = new Set(["cancelled", "deadline_exceeded"]);

/**
 * Functions by content hash. Parsing and hashing cost more than a small evaluation, so a second cache
 * maps the text of a function spec straight to its hash; the compiled cache and the registry of
 * functions clients registered are bounded LRUs. The hash does not depend on how the function was
 * written, so every replica gives the same function the same id.
 */
export class FunctionStore {
  /** Spec text → id: it holds no function, so what the byte budgets evict is freed. */
  private readonly bySource: LruMap<string, string>;
  private readonly compiled: LruMap<string, FunctionEntry>;
  private readonly registry: LruMap<string, FunctionEntry>;
  /** Long expressions being parsed on the pool, by source key: a request for one on its way waits for it. */
  private readonly parsing = new Map<string, Promise<FunctionEntry>>();

  constructor(
    private readonly limits: StoreLimits,
    private readonly events: CacheEvents,
    /** The other processes of a cluster, whose registrations count as this one's. */
    private readonly shared?: SharedRegistry,
  ) {
    const budget = { maxBytes: limits.cacheBytes ?? 128 * 1024 * 1024, weigh: (e: FunctionEntry) => e.estimatedBytes() };
    this.bySource = new LruMap(limits.cacheSize);
    this.compiled = new LruMap(limits.cacheSize, budget);
    this.registry = new LruMap(limits.registrySize, budget);
  }

  /**
   * The function a request names, compiled (from cache when seen before). A model's graph depends on
   * the batch size: the spec's `batch`, else `batchHint` (the first axis of the request's `x`).
   */
  resolve(spec: FunctionSpec | undefined, field = "function", batchHint?: () => number | undefined): FunctionEntry {
    // Given no parser for the pool, find answers at once.
    return this.find(spec, field, batchHint) as FunctionEntry;
  }

  /**
   * As resolve, but expressions of POOL_PARSE_CHARS or more not seen before are parsed by `parse` (on
   * the pool), and the entry comes as a promise: parsing and hashing them held the event loop.
   */
  resolveOffLoop(
    spec: FunctionSpec | undefined,
    field: string,
    batchHint: () => number | undefined,
    parse: (task: ParseTask) => Promise<ParsedOffLoop>,
  ): FunctionEntry | Promise<FunctionEntry> {
    return this.find(spec, field, batchHint, parse);
  }

  private find(
    spec: FunctionSpec | undefined,
    field: string,
    batchHint?: () => number | undefined,
    parseOffLoop?: (task: ParseTask) => Promise<ParsedOffLoop>,
  ): FunctionEntry | Promise<FunctionEntry> {
    if (spec === undefined || spec === null || typeof spec !== "object") {
      throw invalid(`${field} is required: {expression}, {expressions}, {graph}, {model} or {id}`, { field });
    }
    let given = 0;
    for (const k of SOURCES) if (spec[k] !== undefined) given++;
    if (given !== 1) {
      const names = SOURCES.filter((k) => spec[k] !== undefined);
      throw invalid(`${field} must have exactly one of ${listed(SOURCES)}${names.length ? `, got ${listed(names)}` : ""}`, {
        field,
      });
    }
    if (spec.id !== undefined) return this.byId(spec.id, `${field}.id`);
    const batch = spec.model !== undefined ? modelBatch(spec, field, batchHint) : undefined;
    const prebuilt = prebuiltGraph(spec, field);
    const key = prebuilt?.key ?? sourceKey(spec, batch);
    const id = this.bySource.get(key);
    const known = id === undefined ? undefined : this.kept(id);
    if (known !== undefined) {
      this.events.hit("source");
      return known;
    }
    const pending = this.parsing.get(key);
    if (pending !== undefined) {
      this.events.hit("source");
      // What stopped the first request (its client left, its deadline, a full pool) is not this one's.
      return pending.catch((e: unknown) => {
        if (e instanceof RetryableError || (e instanceof AdjointError && CALL_ERRORS.has(e.kind))) {
          return this.find(spec, field, batchHint, parseOffLoop);
        }
        throw e;
      });
    }
    this.events.miss("source");
    const kept = (entry: FunctionEntry) => {
      this.bySource.set(key, entry.hash);
      return entry;
    };
    if (batch !== undefined) return kept(this.model(spec, field, batch));
    // Built on the pool: the entry comes as a promise, which a request for the same function joins.
    const offLoop = (parse: NonNullable<typeof parseOffLoop>, task: ParseTask, source: (parsed: ParsedOffLoop) => FunctionSource) => {
      const parsed = parse(task)
        .then((p) => kept(this.intern(new CompiledFunction(p.graph, p.hash), undefined, undefined, source(p))))
        .finally(() => this.parsing.delete(key));
      this.parsing.set(key, parsed);
      return parsed;
    };
    if (spec.graph !== undefined) {
      if (prebuilt !== undefined) {
        if (prebuilt.error !== undefined) throw errorFromData(prebuilt.error);
        const { graph, hash } = prebuilt.built;
        return kept(this.intern(new CompiledFunction(decodeGraph(graph), hash), undefined, undefined, { encoded: graph }));
      }
      const maxNodes = this.limits.maxNodes;
      if (parseOffLoop !== undefined && largeJsonGraph(spec.graph)) {
        // Refused before it is copied to a worker; the worker checks the nodes themselves.
        checkNodeCount((spec.graph as { nodes: unknown[] }).nodes.length, maxNodes, `${field}.graph.nodes`);
        return offLoop(parseOffLoop, { kind: "parse", graph: spec.graph, maxNodes, field }, ({ encoded }) => ({ encoded }));
      }
      const graph = readGraph(withDecodedConstants(spec.graph), field, maxNodes);
      return kept(this.intern(new CompiledFunction(graph), undefined, undefined, { graph }));
    }
    const { expressions, at } = this.expressionSource(spec, field);
    if (parseOffLoop !== undefined && expressionChars(expressions) >= POOL_PARSE_CHARS) {
      // The parser's source is a small fraction of the graph: the workers get it rather than the graph.
      return offLoop(parseOffLoop, { kind: "parse", expressions, at, field }, () => ({ expressions }));
    }
    const graph = parseFunction({ expressions, at, field });
    return kept(this.intern(new CompiledFunction(graph), undefined, undefined, { expressions }));
  }

  /** Keeps a function in the registry. `created` is false if it was there. */
  private keep(entry: FunctionEntry): { entry: FunctionEntry; created: boolean } {
    const created = !this.registry.has(entry.hash) && this.shared?.recall(entry.hash) === undefined;
    this.registry.set(entry.hash, entry);
    return { entry, created };
  }

  /**
   * Registers a function (a long expression parsed by `parse`, on the pool), and in a cluster waits
   * until every process keeps it too, so that the client's next request finds the id whichever process
   * it reaches.
   */
  async registerShared(
    spec: FunctionSpec | undefined,
    parse: (task: ParseTask) => Promise<ParsedOffLoop>,
  ): Promise<{ entry: FunctionEntry; created: boolean }> {
    const registered = this.keep(await this.find(spec, "function", undefined, parse));
    const { entry } = registered;
    if (this.shared === undefined || spec === undefined || this.shared.recall(entry.hash) !== undefined) return registered;
    try {
      await this.shared.publish(entry.hash, spec, entry.estimatedBytes());
    } catch (e) {
      throw new AdjointError(
        "unavailable",
        `the function could not be shared with the service's other processes (${(e as Error).message}); try again`,
      );
    }
    return registered;
  }

  /**
   * A function still held, by id, weighed again: the requests since its last lookup may have compiled
   * programs for it (the measure is cached, so this costs a lookup when nothing grew).
   */
  private kept(id: string): FunctionEntry | undefined {
    const entry = this.registry.get(id) ?? this.compiled.get(id);
    if (entry !== undefined) {
      this.compiled.reweigh(id);
      this.registry.reweigh(id);
    }
    return entry;
  }

  byId(id: string, field = "id"): FunctionEntry {
    const entry = this.kept(id) ?? this.recalled(id);
    if (entry) {
      this.events.hit("registry");
      return entry;
    }
    this.events.miss("registry");
    throw new AdjointError(
      "not_found",
      `${field}: no function has id ${id}; register it first (POST /v1/functions or RegisterFunction), or send its definition`,
      { field },
    );
  }

  /** A function registered on another process of the cluster, compiled here on first use. */
  private recalled(id: string): FunctionEntry | undefined {
    const spec = this.shared?.recall(id);
    if (spec === undefined) return undefined;
    const entry = this.resolve(spec);
    if (entry.hash !== id) return undefined;
    this.registry.set(id, entry);
    return entry;
  }

  /** The same model compiled for another batch size (a shard of a large batch). */
  modelShard(entry: FunctionEntry, batch: number): FunctionEntry {
    const model = entry.model;
    if (!model) throw new Error("not a model");
    return this.resolve({ model: model.definition, batch });
  }

  private intern(
    fn: CompiledFunction,
    defaultWrt?: readonly string[],
    model?: FunctionEntry["model"],
    source?: FunctionSource,
  ): FunctionEntry {
    const known = this.compiled.get(fn.hash) ?? this.registry.get(fn.hash);
    if (known) {
      this.events.hit("compiled");
      return known;
    }
    this.events.miss("compiled");
    const entry = new FunctionEntry(fn, defaultWrt, model, source);
    this.compiled.set(fn.hash, entry);
    return entry;
  }

  /**
   * A model's loss graph for a batch size; its parameters are what a request differentiates by default.
   * Its id covers, besides the graph, what a model's answers depend on (the parameters: the default
   * gradient, what `initialize` draws; the batch), so it never shares an id, and a cache entry, with
   * the same graph sent as a plain function, whose answers differ.
   */
  private model(spec: FunctionSpec, field: string, batch: number): FunctionEntry {
    const compiled = located(() => compileModel(spec.model as ModelDefinition, batch, this.limits.maxNodes), field);
    checkNodeCount(compiled.graph.size, this.limits.maxNodes, field);
    const identity = JSON.stringify({ graph: contentHash(compiled.graph), model: compiled.parameters, batch });
    return this.intern(
      new CompiledFunction(compiled.graph, `fn_${createHash("sha256").update(identity).digest("hex").slice(0, 32)}`),
      compiled.parameters.map((p) => p.name),
      { definition: spec.model as ModelDefinition, batch, parameters: compiled.parameters },
    );
  }

  /**
   * What the expression parser is given for a function written as expressions, checked, and where it
   * sits in the request. Only what the parser reads, so that a worker given the same source builds the
   * same graph.
   */
  private expressionSource(spec: FunctionSpec, field: string): { expressions: ExpressionSource; at: string } {
    const inputs = spec.inputs?.map((d, i): InputDecl => {
      const decl = typeof d === "string" ? { name: d } : d;
      checkName(decl?.name, typeof d === "string" ? `${field}.inputs[${i}]` : `${field}.inputs[${i}].name`);
      return {
        name: decl.name,
        ...(decl.shape !== undefined ? { shape: decl.shape } : {}),
        ...(decl.dtype !== undefined ? { dtype: decl.dtype } : {}),
      };
    });
    const maxNodes = this.limits.maxNodes;
    if (spec.expression !== undefined) {
      if (typeof spec.expression !== "string") throw invalid(`${field}.expression must be a string`, { field: `${field}.expression` });
      return { expressions: { outputs: [{ name: "f", text: spec.expression }], inputs, maxNodes }, at: `${field}.expression` };
    }
    const exprs = spec.expressions;
    if (typeof exprs !== "object" || exprs === null || Array.isArray(exprs)) {
      throw invalid(`${field}.expressions must map output names to expressions`, { field: `${field}.expressions` });
    }
    const outputs = Object.entries(exprs).map(([name, text]) => {
      if (typeof text !== "string")
        throw invalid(`${field}.expressions.${name} must be a string`, { field: `${field}.expressions.${name}` });
      return { name: checkName(name, `${field}.expressions.${name}`), text };
    });
    return { expressions: { outputs, inputs, maxNodes }, at: `${field}.expressions` };
  }
}

/** A model's batch size: given with it, or the first axis of the request's data. */
function modelBatch(spec: FunctionSpec, field: string, hint?: () => number | undefined): number {
  const batch = spec.batch ?? hint?.();
  if (batch === undefined || !Number.isInteger(batch) || batch < 1) {
    throw invalid(
      `${field}.batch: a model's graph depends on the batch size; give ${field}.batch, or the data x (batch first) in the point`,
      { field: `${field}.batch` },
    );
  }
  return batch;
}

/**
 * Graph constants may use the request's tensor forms (base64, a gRPC tensor); the core's graph reader
 * takes numbers, nested arrays and {shape, data}, so other forms are decoded first.
 */
function withDecodedConstants(raw: unknown): unknown {
  const graph = raw as { nodes?: unknown };
  if (!Array.isArray(graph?.nodes)) return raw;
  if (!graph.nodes.some((n) => encodedConstant((n as { value?: unknown })?.value))) return raw;
  const ctx = new DecodeContext(false, Number.POSITIVE_INFINITY);
  const nodes = graph.nodes.map((n, i) => {
    const value = (n as { value?: unknown })?.value;
    if (!encodedConstant(value)) return n;
    const t = decodeTensor(value as TensorValue, `nodes[${i}].value`, ctx);
    return { ...(n as object), value: { shape: t.shape, data: Array.from(t.data) } };
  });
  return { ...(raw as object), nodes };
}

/** A function built on the pool (service.parseOnPool): its graph, its content hash, and the graph in the codec's form. */
export interface ParsedOffLoop {
  readonly graph: Graph;
  readonly hash: string;
  readonly encoded: SharedArrayBuffer;
}

/** Marks a request's function spec with the graph a worker built from it (service.readLargeJson); no client can set a symbol. */
const PREBUILT = Symbol("a graph built on the pool");

export function attachPrebuilt(body: unknown, prebuilt: PrebuiltGraph): void {
  const spec = (body as Record<string, unknown> | null)?.[prebuilt.field];
  if (typeof spec === "object" && spec !== null) (spec as { [PREBUILT]?: PrebuiltGraph })[PREBUILT] = prebuilt;
}

function prebuiltGraph(spec: FunctionSpec, field: string): PrebuiltGraph | undefined {
  const prebuilt = (spec as { [PREBUILT]?: PrebuiltGraph })[PREBUILT];
  return prebuilt?.field === field ? prebuilt : undefined;
}
