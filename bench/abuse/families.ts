import { Agent, request } from "node:http";
import { connect } from "node:net";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { DifferentiateRequestSchema, Mode } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { DIFFERENTIATE, grpcClient } from "../load/clients.js";
import { SCENARIOS, w3Request } from "../load/scenarios.js";

/**
 * The attack families of issue 9, each a short burst a hostile client can send from a few hundred
 * bytes of request. `npm run bench:abuse` runs them against a fresh service and reports what a cheap
 * request waited meanwhile and the resident memory around each; test/service/abuse.test.ts runs the
 * same families against an in-process server and checks every answer was a clean refusal or right.
 */

export interface Target {
  readonly httpPort: number;
  readonly grpcPort: number;
}

/** What the service answered: HTTP statuses and gRPC codes by name, with how many of each. */
export interface Outcome {
  readonly answers: Record<string, number>;
  /** Answers that must never happen: 5xx other than 503/504, INTERNAL/UNKNOWN, a stack trace, a hang. */
  readonly faults: string[];
}

export interface Family {
  readonly name: string;
  readonly what: string;
  /**
   * Runs the burst; `scale` below 1 shrinks it for the test suite: how many requests and for how
   * long, never the sizes that decide whether one is refused.
   */
  run(target: Target, scale: number): Promise<Outcome>;
}

export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

const STACK = /\n\s+at |node:internal|\/src\/|\/dist\/|\.ts:\d+|\.js:\d+/;

/** One POST, by default on a connection of its own (so a slow answer cannot hold others back), with a time cap. */
export function post(
  port: number,
  path: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
  timeoutMs = 60_000,
  agent: Agent | false = false,
) {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  return new Promise<HttpAnswer>((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": String(bytes.byteLength), ...headers },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", () => resolve({ status: -1, text: "response error" }));
      },
    );
    req.on("timeout", () => {
      req.destroy();
      resolve({ status: -2, text: "no answer in time" });
    });
    req.on("error", (e) => resolve({ status: -1, text: `connection error: ${(e as Error).message}` }));
    req.end(bytes);
  });
}

export interface GrpcAnswer {
  readonly code: string;
  readonly details: string;
  readonly bytes?: Buffer;
}

const identity = (b: Buffer) => b;

/** One unary Differentiate call with pre-encoded bytes (possibly garbage); never rejects. */
export function call(client: grpc.Client, bytes: Buffer, deadlineMs = 60_000): Promise<GrpcAnswer> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      DIFFERENTIATE,
      identity,
      identity,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (err, value) =>
        err
          ? resolve({ code: grpc.status[err.code] ?? String(err.code), details: err.details ?? "" })
          : resolve({ code: "OK", details: "", bytes: value as Buffer }),
    );
  });
}

export const encodeRequest = (req: MessageInitShape<typeof DifferentiateRequestSchema>): Buffer =>
  Buffer.from(toBinary(DifferentiateRequestSchema, create(DifferentiateRequestSchema, req)));

/** Tallies answers and notes the ones that are faults whatever the request was. */
export class Tally {
  readonly answers: Record<string, number> = Object.create(null);
  readonly faults: string[] = [];

  http(a: HttpAnswer, what: string): HttpAnswer {
    // A body refused before it was read: the server answers 503 and closes, and a client still
    // writing its body may see the connection end before it reads the answer.
    const cut = a.status === -1 && /EPIPE|ECONNRESET/.test(a.text);
    const key = cut ? "HTTP connection closed mid-body" : `HTTP ${a.status}`;
    this.answers[key] = (this.answers[key] ?? 0) + 1;
    if ((a.status < 0 && !cut) || (a.status >= 500 && a.status !== 503 && a.status !== 504))
      this.fault(`${what}: ${key} ${a.text.slice(0, 200)}`);
    if (a.status >= 400 && STACK.test(a.text)) this.fault(`${what}: the error carries a stack trace or a path: ${a.text.slice(0, 300)}`);
    return a;
  }

  grpc(a: GrpcAnswer, what: string): GrpcAnswer {
    const key = `gRPC ${a.code}`;
    this.answers[key] = (this.answers[key] ?? 0) + 1;
    if (a.code === "INTERNAL" || a.code === "UNKNOWN" || a.code === "UNAVAILABLE") this.fault(`${what}: ${key} ${a.details.slice(0, 200)}`);
    if (STACK.test(a.details)) this.fault(`${what}: the error carries a stack trace or a path: ${a.details.slice(0, 300)}`);
    return a;
  }

  fault(text: string): void {
    if (this.faults.length < 20) this.faults.push(text);
  }

  outcome(): Outcome {
    return { answers: { ...this.answers }, faults: this.faults };
  }
}

const DIFF = "/v1/differentiate";
const json = (body: unknown) => JSON.stringify(body);

/** Runs `count` tasks with at most `concurrency` at once. */
async function limited(count: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(count, concurrency) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

const atLeast = (n: number, scale: number) => Math.max(1, Math.round(n * scale));

/** The names a client may choose that collide with Object.prototype's. */
export const DANGEROUS_NAMES = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf"] as const;

const prototypeNames: Family = {
  name: "names",
  what: "client-chosen names (outputs, inputs, expressions) that are Object.prototype keys, jacobian over points and columns",
  async run(t) {
    const tally = new Tally();
    const client = grpcClient(t.grpcPort, true);
    for (const name of DANGEROUS_NAMES) {
      const graph = { inputs: ["x"], nodes: [{ id: "y", op: "square", args: ["x"] }], outputs: [{ name, node: "y" }] };
      tally.http(await post(t.httpPort, DIFF, json({ function: { graph }, mode: "jacobian", points: [{ x: 1 }, { x: 2 }] })), name);
      tally.http(await post(t.httpPort, DIFF, json({ function: { graph }, mode: "jacobian", columns: { x: [1, 2] } })), name);
      tally.grpc(
        await call(
          client,
          encodeRequest({
            function: { source: { case: "expressions", value: { outputs: [{ name, text: "x*x" }] } } },
            mode: Mode.JACOBIAN,
            columns: { x: { shape: [2], values: [1, 2] } },
          }),
        ),
        name,
      );
      tally.grpc(
        await call(
          client,
          encodeRequest({ function: { source: { case: "expression", value: `${name}*2` } }, point: { values: { [name]: 3 } } }),
        ),
        name,
      );
    }
    client.close();
    return tally.outcome();
  },
};

/** A 12-op expression of one input. */
const TWELVE_OPS = "sin(x)*exp(cos(x)) + log(1 + x^2)*tanh(x) - sqrt(1 + x^4)";

const derivedWork: Family = {
  name: "derived-work",
  what: "derivative of order 16 of a 12-op expression, and wrt naming x 20 times",
  async run(t, scale) {
    const tally = new Tally();
    const client = grpcClient(t.grpcPort, true);
    const copies = atLeast(2, scale);
    await Promise.all([
      limited(copies, copies, async () =>
        tally.http(
          await post(t.httpPort, DIFF, json({ function: { expression: TWELVE_OPS }, mode: "derivative", order: 16, point: { x: 0.5 } })),
          "order 16",
        ),
      ),
      limited(copies, copies, async () =>
        tally.http(
          await post(
            t.httpPort,
            DIFF,
            json({ function: { expression: TWELVE_OPS }, mode: "derivative", wrt: Array(20).fill("x"), point: { x: 0.5 } }),
          ),
          "wrt x 20 times",
        ),
      ),
      limited(copies, copies, async () =>
        tally.grpc(
          await call(
            client,
            encodeRequest({
              function: { source: { case: "expression", value: TWELVE_OPS } },
              mode: Mode.DERIVATIVE,
              order: 16,
              point: { values: { x: 0.5 } },
            }),
          ),
          "order 16 (gRPC)",
        ),
      ),
    ]);
    client.close();
    return tally.outcome();
  },
};

const zeroSize: Family = {
  name: "zero-size",
  what: "a tensor of shape [0, 5e10]: no elements, a loop of 5e10",
  async run(t) {
    const tally = new Tally();
    const body = {
      function: { expression: "sum(exp(x))", inputs: [{ name: "x", shape: [0, 50_000_000_000] }] },
      point: { x: { shape: [0, 50_000_000_000], data: [] } },
    };
    tally.http(await post(t.httpPort, DIFF, json(body)), "[0, 5e10]");
    const client = grpcClient(t.grpcPort, true);
    tally.grpc(
      await call(
        client,
        encodeRequest({
          function: { source: { case: "expression", value: "sum(exp(x))" }, inputs: [{ name: "x", shape: [0, 4_000_000_000] }] },
          point: { tensors: { x: { shape: [0, 4_000_000_000], values: [] } } },
        }),
      ),
      "[0, 4e9] (gRPC)",
    );
    client.close();
    return tally.outcome();
  },
};

const resultFields: Family = {
  name: "result-fields",
  what: "the Hessian of a function of 2,000 named inputs: 4 million result fields",
  async run(t, _scale) {
    const tally = new Tally();
    const n = 2000;
    const names = Array.from({ length: n }, (_, i) => `x${i}`);
    const point = Object.fromEntries(names.map((name, i) => [name, i / n]));
    tally.http(
      await post(t.httpPort, DIFF, json({ function: { expression: names.join("*") }, mode: "hessian", point })),
      "hessian of 2,000 inputs",
    );
    return tally.outcome();
  },
};

/** An expression of `terms` distinct terms, about three nodes each. */
export function manyTerms(terms: number, salt = 0): string {
  return Array.from({ length: terms }, (_, i) => `sin(x*${(1 + (i + salt * terms) / 1e6).toFixed(6)})`).join("+");
}

const bigTrace: Family = {
  name: "trace",
  what: "the trace of a 10,000-node function at 100 points",
  async run(t, _scale) {
    const tally = new Tally();
    const points = Array.from({ length: 100 }, (_, i) => ({ x: i / 100 }));
    tally.http(await post(t.httpPort, DIFF, json({ function: { expression: manyTerms(3400) }, trace: true, points })), "trace");
    return tally.outcome();
  },
};

const hugeExpression: Family = {
  name: "huge-expression",
  what: "an expression of a million terms (2 MB of text)",
  async run(t, _scale) {
    const tally = new Tally();
    const expression = Array(1_000_000).fill("x").join("+");
    tally.http(await post(t.httpPort, DIFF, json({ function: { expression }, point: { x: 1 } })), "1M terms");
    return tally.outcome();
  },
};

const intermediates: Family = {
  name: "intermediates",
  what: "broadcast_to(x, [8000, 8000]) in four distinct functions, and [100000, 100000]",
  async run(t, _scale) {
    const tally = new Tally();
    const side = 8000;
    for (let k = 1; k <= 4; k++) {
      const expression = `sum(broadcast_to(x, shape=[${side}, ${side}]))*${k}`;
      tally.http(await post(t.httpPort, DIFF, json({ function: { expression }, point: { x: 1 } })), `[${side}, ${side}]`);
    }
    tally.http(
      await post(t.httpPort, DIFF, json({ function: { expression: "sum(broadcast_to(x, shape=[100000, 100000]))" }, point: { x: 1 } })),
      "[1e5, 1e5]",
    );
    return tally.outcome();
  },
};

const initialize: Family = {
  name: "initialize",
  what: "initialize a 12,000 × 12,000 dense layer, and a 100,000 × 100,000 one",
  async run(t, _scale) {
    const tally = new Tally();
    for (const units of [12_000, 100_000]) {
      const model = { input: [units], layers: [{ type: "dense", units, name: "fc" }], loss: "mse" };
      const body = {
        function: { model, batch: 1 },
        initialize: { seed: 1 },
        point: { x: [Array(units).fill(0.5)], y: [Array(units).fill(0)] },
      };
      tally.http(await post(t.httpPort, DIFF, json(body)), `${units}×${units}`);
    }
    return tally.outcome();
  },
};

const bigAnswers: Family = {
  name: "big-answers",
  what: "20 concurrent requests for 1.9 million numbers of answer each, and one for 16 million",
  async run(t, scale) {
    const tally = new Tally();
    const ask = (rows: number) =>
      json({ function: { expression: `broadcast_to(x, shape=[${rows}, 1000])` }, mode: "value", point: { x: 1.5 } });
    tally.http(await post(t.httpPort, DIFF, ask(16_000)), "16 million numbers");
    const copies = atLeast(20, scale);
    await limited(copies, copies, async () => tally.http(await post(t.httpPort, DIFF, ask(1900)), "1.9 million numbers"));
    return tally.outcome();
  },
};

const bigFunctions: Family = {
  name: "big-functions",
  what: "distinct functions of about 100,000 nodes, each differentiated once (what the caches keep)",
  async run(t, scale) {
    const tally = new Tally();
    const count = atLeast(6, scale);
    // Functions within the node limit, answered: here size is what the caches hold, not what decides a
    // refusal, so a shrunk run may take smaller ones (their parsing holds the event loop ~0.5 s at full size).
    const terms = atLeast(24_000, scale);
    for (let k = 0; k < count; k++) {
      const answer = await post(t.httpPort, DIFF, json({ function: { expression: manyTerms(terms, k) }, point: { x: 0.5 } }));
      tally.http(answer, `function ${k}`);
    }
    return tally.outcome();
  },
};

/**
 * A JSON graph of `n` nodes over x and y: binary ops on the last node and one seven back, each followed
 * by a bounded one (sin, cos, tanh), so that its value and gradient stay finite at any length; `salt`,
 * added to x first, makes it another function.
 */
export function bigGraph(
  n: number,
  salt: number,
): { inputs: string[]; nodes: { id: string; op: string; args: (string | number)[] }[]; outputs: string[] } {
  const nodes = [{ id: "n0", op: "add", args: ["x", salt] as (string | number)[] }];
  for (let i = 1; i < n; i++) {
    const previous = `n${i - 1}`;
    const node =
      i % 2 === 1
        ? { op: ["sin", "cos", "tanh"][i % 3], args: [previous] }
        : { op: ["add", "mul", "sub"][i % 3], args: [previous, i > 7 ? `n${i - 7}` : "y"] };
    nodes.push({ id: `n${i}`, ...node });
  }
  return { inputs: ["x", "y"], nodes, outputs: [`n${n - 1}`] };
}

/** A JSON graph of bigGraph's kind (operands by id or inline number) as a gRPC Function. */
export function graphFunction(g: ReturnType<typeof bigGraph>): MessageInitShape<typeof DifferentiateRequestSchema>["function"] {
  const nodes = g.nodes.map((n) => ({
    id: n.id,
    op: n.op,
    args: n.args.map((a) => ({ arg: typeof a === "number" ? { case: "number" as const, value: a } : { case: "id" as const, value: a } })),
  }));
  return {
    source: {
      case: "graph",
      value: { inputs: g.inputs.map((name) => ({ name })), nodes, outputs: g.outputs.map((o) => ({ name: o, node: o })) },
    },
  };
}

const bigGraphs: Family = {
  name: "big-graphs",
  what: "distinct JSON graphs of 60,000 nodes, each differentiated once, over HTTP (2.9 MB bodies) and gRPC",
  async run(t, scale) {
    const tally = new Tally();
    const count = atLeast(4, scale);
    // As big-functions: the size is what a build costs, not what decides a refusal, so a shrunk run
    // takes smaller graphs (still built on the pool, from 1,000 nodes).
    const nodes = atLeast(60_000, scale);
    const client = grpcClient(t.grpcPort, true);
    for (let k = 0; k < count; k++) {
      const graph = bigGraph(nodes, 2 * k);
      tally.http(await post(t.httpPort, DIFF, json({ function: { graph }, point: { x: 0.5, y: 0.25 } })), `HTTP graph ${k}`);
      const request = encodeRequest({ function: graphFunction(bigGraph(nodes, 2 * k + 1)), point: { values: { x: 0.5, y: 0.25 } } });
      tally.grpc(await call(client, request), `gRPC graph ${k}`);
    }
    client.close();
    return tally.outcome();
  },
};

/** The W3 training step as JSON with base64 tensors (3.2 MB), and as a gRPC message with raw bytes. */
export function w3Bodies(): { json: Buffer; grpc: Buffer } {
  const { model, tensors } = w3Request();
  const base64 = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  const point = Object.fromEntries(tensors.map(([name, shape, data]) => [name, { shape, base64: base64(data) }]));
  return { json: Buffer.from(json({ function: { model }, point, encoding: "base64" })), grpc: SCENARIOS.W3().grpc };
}

const overloadHttp: Family = {
  name: "overload-http",
  what: "200 connections sending the W3 training step (3.2 MB JSON) over HTTP for 10 s",
  async run(t, scale) {
    const tally = new Tally();
    const { json: body } = w3Bodies();
    const until = Date.now() + 10_000 * scale;
    const agent = new Agent({ keepAlive: true, maxSockets: atLeast(200, scale) });
    await Promise.all(
      Array.from({ length: atLeast(200, scale) }, async () => {
        while (Date.now() < until) {
          const a = await new Promise<HttpAnswer>((resolve) => {
            const req = request(
              { host: "127.0.0.1", port: t.httpPort, path: DIFF, method: "POST", agent, headers: { "content-type": "application/json" } },
              (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8").slice(0, 400) }));
              },
            );
            req.on("error", (e) => resolve({ status: -1, text: (e as Error).message }));
            req.end(body);
          });
          tally.http(a, "W3 over HTTP");
          // A refused client backs off a little, as Retry-After asks (a real one would wait longer).
          if (a.status === 503) await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
    agent.destroy();
    return tally.outcome();
  },
};

const overloadGrpc: Family = {
  name: "overload-grpc",
  what: "300 concurrent W3 training steps over gRPC",
  async run(t, scale) {
    const tally = new Tally();
    const { grpc: bytes } = w3Bodies();
    const client = grpcClient(t.grpcPort, true);
    await Promise.all(Array.from({ length: atLeast(300, scale) }, async () => tally.grpc(await call(client, bytes), "W3 over gRPC")));
    client.close();
    return tally.outcome();
  },
};

const slowBodies: Family = {
  name: "slow-body",
  what: "100 connections declaring a 1,000-byte body, sending 1 byte, then silence",
  async run(t, scale) {
    const tally = new Tally();
    const count = atLeast(100, scale);
    const started = Date.now();
    const closedAfter = await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<number>((resolve) => {
            const socket = connect(t.httpPort, "127.0.0.1", () => {
              socket.write(`POST ${DIFF} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{`);
            });
            const give = setTimeout(() => {
              socket.destroy();
              resolve(Number.POSITIVE_INFINITY);
            }, 60_000);
            socket.on("data", () => {});
            socket.on("error", () => {});
            socket.on("close", () => {
              clearTimeout(give);
              resolve(Date.now() - started);
            });
          }),
      ),
    );
    const worst = Math.max(...closedAfter);
    tally.answers[`closed within ${Number.isFinite(worst) ? `${(worst / 1000).toFixed(1)} s` : "60 s: never"}`] = count;
    if (!Number.isFinite(worst)) tally.fault("slow bodies kept their connections open for 60 s");
    return tally.outcome();
  },
};

const badMessages: Family = {
  name: "bad-messages",
  what: "undecodable protobuf bytes, and a gRPC answer larger than the message limit",
  async run(t) {
    const tally = new Tally();
    const client = grpcClient(t.grpcPort, true);
    for (const bytes of [Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from("not a protobuf message at all"), Buffer.from([0x0a, 0x80])]) {
      const a = tally.grpc(await call(client, bytes), "garbage bytes");
      if (a.code !== "INVALID_ARGUMENT") tally.fault(`garbage bytes answered ${a.code}, not INVALID_ARGUMENT`);
    }
    // 3 million float64 outputs: 24 MB of answer, over the default 16 MiB limit.
    const big = await call(
      client,
      encodeRequest({
        function: { source: { case: "expression", value: "broadcast_to(x, shape=[3000, 1000])" } },
        mode: Mode.VALUE,
        point: { values: { x: 1 } },
      }),
    );
    tally.grpc(big, "oversize answer");
    client.close();
    return tally.outcome();
  },
};

export const FAMILIES: readonly Family[] = [
  prototypeNames,
  derivedWork,
  zeroSize,
  resultFields,
  bigTrace,
  hugeExpression,
  intermediates,
  initialize,
  bigAnswers,
  bigFunctions,
  bigGraphs,
  overloadHttp,
  overloadGrpc,
  slowBodies,
  badMessages,
];
