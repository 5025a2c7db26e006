import { Agent } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { call, post } from "./families.js";
import { W1_GRPC_REQUEST, W1_HTTP_BODY, workedExampleError } from "./worked.js";

export interface ProbeReading {
  /** Worst latency over a kept-alive connection, as clients and load generators send. */
  readonly worstHttp: number;
  /** Worst latency of a request that opened its own connection (every fourth HTTP probe). */
  readonly worstHttpNew: number;
  readonly worstGrpc: number;
  readonly sent: number;
  readonly wrong: string[];
}

/**
 * The cheap client: sends the worked example every 50 ms, alternating HTTP and gRPC, each transport on
 * a kept-alive connection of its own (every fourth HTTP probe opens a new connection, reported apart:
 * under a flood of reconnecting clients a new connection waits in the kernel's accept queue, which
 * no server code reaches), and keeps the worst latencies and any wrong answer since it was last read.
 */
export class Prober {
  private worstHttp = 0;
  private worstHttpNew = 0;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private worstGrpc = 0;
  private sent = 0;
  private readonly wrong: string[] = [];
  private running = true;
  private readonly client: grpc.Client;
  private readonly done: Promise<void>;

  constructor(private readonly target: { httpPort: number; grpcPort: number }) {
    this.client = new grpc.Client(`127.0.0.1:${target.grpcPort}`, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    this.done = this.loop();
  }

  /** The figures since the last read, and a fresh start. */
  read(): ProbeReading {
    const reading = {
      worstHttp: this.worstHttp,
      worstHttpNew: this.worstHttpNew,
      worstGrpc: this.worstGrpc,
      sent: this.sent,
      wrong: this.wrong.splice(0),
    };
    this.worstHttp = 0;
    this.worstHttpNew = 0;
    this.worstGrpc = 0;
    this.sent = 0;
    return reading;
  }

  async stop(): Promise<ProbeReading> {
    this.running = false;
    await this.done;
    this.client.close();
    this.agent.destroy();
    return this.read();
  }

  private async loop(): Promise<void> {
    let useHttp = true;
    let httpProbes = 0;
    while (this.running) {
      const started = performance.now();
      if (useHttp) {
        const fresh = httpProbes++ % 4 === 3;
        const a = await post(this.target.httpPort, "/v1/differentiate", W1_HTTP_BODY, {}, 30_000, fresh ? false : this.agent);
        const ms = performance.now() - started;
        if (fresh) this.worstHttpNew = Math.max(this.worstHttpNew, ms);
        else this.worstHttp = Math.max(this.worstHttp, ms);
        const bad = a.status === 200 ? workedExampleError(JSON.parse(a.text)) : `HTTP ${a.status} ${a.text.slice(0, 200)}`;
        if (bad) this.wrong.push(`HTTP: ${bad}`);
      } else {
        const a = await call(this.client, W1_GRPC_REQUEST, 30_000);
        this.worstGrpc = Math.max(this.worstGrpc, performance.now() - started);
        if (a.code !== "OK") this.wrong.push(`gRPC: ${a.code} ${a.details.slice(0, 200)}`);
      }
      this.sent++;
      useHttp = !useHttp;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
