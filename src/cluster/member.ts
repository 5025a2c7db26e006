import { LruMap } from "../runtime/lru.js";
import type { SharedRegistry } from "../service/functions.js";
import type { FunctionSpec } from "../service/types.js";
import { isAdjointMessage, type LearnedMessage, type MemberMessage, type PrimaryMessage, type SharedSpec } from "./messages.js";

/** How long a member waits for the primary before it gives up on a question. */
const ASK_TIMEOUT_MS = 5000;

type Question = MemberMessage extends infer M ? (M extends { request: number } ? Omit<M, "request"> : never) : never;

/**
 * One process of a clustered adjoint, as its service sees the others: registered functions are shared
 * (a client may register on one process and call on another, each HTTP connection lands on any of
 * them), and the metrics are the whole service's. Everything goes through the primary, which answers
 * on the IPC channel.
 */
export class ClusterMember implements SharedRegistry {
  private readonly specs: LruMap<string, SharedSpec>;
  private readonly waiting = new Map<number, { resolve: (m: PrimaryMessage) => void; reject: (e: Error) => void }>();
  private asked = 0;

  constructor(
    limits: { readonly registrySize: number; readonly cacheBytes: number },
    private readonly channel: NodeJS.Process = process,
  ) {
    this.specs = new LruMap(limits.registrySize, { maxBytes: limits.cacheBytes, weigh: (s) => s.bytes });
    channel.on("message", (m: unknown) => this.receive(m));
  }

  recall(id: string): FunctionSpec | undefined {
    return this.specs.get(id)?.spec;
  }

  async publish(id: string, spec: FunctionSpec, bytes: number): Promise<void> {
    this.specs.set(id, { spec, bytes });
    await this.ask({ type: "adjoint:register", id, spec, bytes } as Question);
  }

  /** Learns every function registered so far; called before the member listens. */
  async join(): Promise<void> {
    const reply = await this.ask({ type: "adjoint:snapshot" });
    if (reply.type !== "adjoint:snapshot-reply") throw new Error("cluster: unexpected answer to a snapshot");
    for (const [id, shared] of reply.specs) this.specs.set(id, shared);
  }

  /** The Prometheus exposition of every process together. */
  async metricsText(): Promise<string> {
    const reply = await this.ask({ type: "adjoint:metrics" });
    // A reply with an error was rejected in receive().
    if (reply.type !== "adjoint:reply" || reply.text === undefined) throw new Error("cluster: the primary sent no metrics");
    return reply.text;
  }

  serving(httpPort: number, grpcPort: number): void {
    this.send({ type: "adjoint:serving", httpPort, grpcPort });
  }

  private receive(m: unknown): void {
    if (!isAdjointMessage(m)) return;
    const message = m as PrimaryMessage;
    if (message.type === "adjoint:learn") {
      this.specs.set(message.id, { spec: message.spec, bytes: message.bytes });
      this.send({ type: "adjoint:learned", request: message.request } satisfies LearnedMessage);
      return;
    }
    const waiter = this.waiting.get(message.request);
    if (waiter === undefined) return;
    this.waiting.delete(message.request);
    if (message.type === "adjoint:reply" && message.error !== undefined && message.text === undefined)
      waiter.reject(new Error(message.error));
    else waiter.resolve(message);
  }

  private ask(question: Question): Promise<PrimaryMessage> {
    const request = ++this.asked;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(request);
        reject(new Error(`cluster: the primary did not answer ${question.type} within ${ASK_TIMEOUT_MS} ms`));
      }, ASK_TIMEOUT_MS);
      this.waiting.set(request, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.send({ ...question, request } as MemberMessage, (e) => {
        if (e === null || e === undefined) return;
        clearTimeout(timer);
        this.waiting.delete(request);
        reject(e);
      });
    });
  }

  private send(message: MemberMessage | LearnedMessage, done?: (e: Error | null) => void): void {
    if (this.channel.send === undefined || !this.channel.connected) {
      done?.(new Error("cluster: the channel to the primary is closed"));
      return;
    }
    this.channel.send(message, undefined, {}, (e) => done?.(e ?? null));
  }
}
