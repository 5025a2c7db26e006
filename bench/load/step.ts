import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { loadConfig } from "../../src/service/config.js";
import { oursW3 } from "../suites/w3.js";
import { generateW3, W3_REFERENCE_LOSS, w3ZeroParams } from "../workloads/w3.js";
import { DIFFERENTIATE, grpcCall, grpcClient, httpPost, keepAliveAgent } from "./clients.js";
import { type Figures, h2load, hasTool, INSTALL_HINT, type LoadFiles, prepareFiles, wrk } from "./drivers.js";
import { type Started, startProcess, startService, stopProcess } from "./process.js";
import { repoRoot, SCENARIOS, w3Request } from "./scenarios.js";

/**
 * W3 end to end against the same training step in-process (issue 10's targets): one request at a
 * time over HTTP in the binary framing, over gRPC with raw bytes, and over HTTP as JSON with base64
 * tensors (answers asked for in base64), in interleaved rounds with the in-process step
 * (bench/suites/w3.ts, "ours loss+gradient"). The requests are sent by C clients, wrk with one
 * connection and h2load with one stream, so that what is measured is the service and the wire, not a
 * JavaScript client sharing the two cores (without them, this process's HTTP and gRPC clients, which
 * receive each answer whole but do not decode it). A C client's time per call is 1 ÷ its rate. The
 * ratio is the median of the per-round ratios. Each transport's answer is checked against the closed
 * form before and after timing. Beside them, the floor of each transport (echo-server.ts): a fastify
 * route and a grpc-js method that read the same request and answer the service's own answer bytes,
 * computing nothing, so that what moving the bytes costs on this machine, client included, is measured
 * in the same rounds.
 */
const ROUNDS = Number(process.env.STEP_ROUNDS ?? 7);
/** Calls per round of the in-process step and of the JavaScript clients. */
const CALLS = Number(process.env.STEP_CALLS ?? 8);
/** Seconds per round of wrk and h2load. */
const SECONDS = Number(process.env.STEP_SECONDS ?? 2);
const C_CLIENTS = process.env.STEP_JS_CLIENT !== "1" && hasTool("wrk") && hasTool("h2load");

/** One contender's round: ms per call, and the client's CPU seconds per second where it is a separate process. */
interface Timed {
  ms: number;
  clientCpu?: number;
}

/** CALLS calls of `call` one after another in this process. */
function timed(call: () => Promise<void>): () => Promise<Timed> {
  return async () => {
    const t = performance.now();
    for (let i = 0; i < CALLS; i++) await call();
    return { ms: (performance.now() - t) / CALLS };
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function jsonBase64Body(): Buffer {
  const { model, tensors } = w3Request();
  const point: Record<string, unknown> = {};
  for (const [name, shape, data] of tensors) {
    point[name] = { shape, dtype: "float64", base64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64") };
  }
  return Buffer.from(JSON.stringify({ function: { model }, point, encoding: "base64" }));
}

const HELPED_STEP = (helpers: number) => `in-process step, ${helpers} matmul helper${helpers === 1 ? "" : "s"}`;

async function main(): Promise<void> {
  let stopHelped: (() => Promise<number>) | undefined;
  const service = await startService(repoRoot());
  // Stopped however the run ends: a run that fails must not leave the service serving.
  let echo: Started | undefined;
  try {
    const w3 = SCENARIOS.W3();
    const json = jsonBase64Body();
    const agent = keepAliveAgent(1);
    const url = new URL(`http://127.0.0.1:${service.httpPort}/v1/differentiate`);
    const client = grpcClient(service.grpcPort);
    const data = generateW3();
    const grads = w3ZeroParams();
    const ours = oursW3().find((i) => i.lossAndGradient !== undefined);
    if (ours?.lossAndGradient === undefined) throw new Error("no in-process W3 step");
    const step = ours.lossAndGradient;
    // Every answer's numbers are checked once, before timing; timed calls only receive the bytes, so that
    // decoding 2 MB answers in this (JavaScript) client is not counted against the server.
    const binaryAnswer = await httpPost(agent, url, w3.http.body, w3.http.headers);
    checkHttp(binaryAnswer, w3);
    const grpcAnswer = await grpcCall(client, DIFFERENTIATE, w3.grpc);
    checkGrpc(w3.checkGrpc(grpcAnswer));
    const jsonAnswer = await httpPost(agent, url, json, { "content-type": "application/json" });
    checkJson(jsonAnswer);
    echo = await startEcho(binaryAnswer.body, binaryAnswer.headerLength ?? "0", jsonAnswer.body, grpcAnswer);
    const echoAgent = keepAliveAgent(1);
    const echoUrl = new URL(`http://127.0.0.1:${echo.httpPort}/v1/differentiate`);
    const echoClient = grpcClient(echo.grpcPort);
    const serverPids = { service: service.child.pid ?? -1, echo: echo.child.pid ?? -1 };
    const dir = mkdtempSync(join(tmpdir(), "adjoint-step-load-"));
    const binaryFiles = prepareFiles(dir, "w3-binary", w3.http.body, w3.http.headers, w3.grpc);
    const jsonFiles = prepareFiles(dir, "w3-json", json, { "content-type": "application/json" }, w3.grpc);
    /** One call at a time from a C client for SECONDS: ms per call and the client's CPU share. */
    const cRun = async (run: Promise<Figures>): Promise<Timed> => {
      const f = await run;
      if (f.errors > 0 || !(f.rps > 0)) throw new Error(`${f.errors} errors, ${f.rps} calls/s`);
      return { ms: 1000 / f.rps, clientCpu: f.clientCpu };
    };
    const http = (port: number, pid: number, files: LoadFiles) => () =>
      cRun(wrk({ url: `http://127.0.0.1:${port}/v1/differentiate`, serverPid: pid, seconds: SECONDS, connections: 1 }, files));
    const grpc = (port: number, pid: number) => () =>
      cRun(
        h2load(
          { url: `http://127.0.0.1:${port}${DIFFERENTIATE}`, serverPid: pid, seconds: SECONDS, connections: 1, streams: 1 },
          binaryFiles,
        ),
      );
    type Contender = [string, () => Promise<Timed>];
    const cClients: Contender[] = [
      ["HTTP binary framing", http(service.httpPort, serverPids.service, binaryFiles)],
      ["gRPC raw bytes", grpc(service.grpcPort, serverPids.service)],
      ["HTTP JSON + base64", http(service.httpPort, serverPids.service, jsonFiles)],
      ["floor: HTTP binary", http(echo.httpPort, serverPids.echo, binaryFiles)],
      ["floor: gRPC raw", grpc(echo.grpcPort, serverPids.echo)],
      ["floor: HTTP JSON", http(echo.httpPort, serverPids.echo, jsonFiles)],
    ];
    const jsClients: Contender[] = [
      ["HTTP binary framing", timed(async () => ok(await httpPost(agent, url, w3.http.body, w3.http.headers)))],
      ["gRPC raw bytes", timed(async () => void (await grpcCall(client, DIFFERENTIATE, w3.grpc)))],
      ["HTTP JSON + base64", timed(async () => ok(await httpPost(agent, url, json, { "content-type": "application/json" })))],
      ["floor: HTTP binary", timed(async () => ok(await httpPost(echoAgent, echoUrl, w3.http.body, w3.http.headers)))],
      ["floor: gRPC raw", timed(async () => void (await grpcCall(echoClient, DIFFERENTIATE, w3.grpc)))],
      ["floor: HTTP JSON", timed(async () => ok(await httpPost(echoAgent, echoUrl, json, { "content-type": "application/json" })))],
    ];
    // The service's pool workers split large products with helper threads: the same step on a thread
    // with as many helpers shows what transport and hand-offs add to the service's own computation.
    const helpers = loadConfig([], process.env).matmulHelpers;
    const helped = new Worker(new URL("./step-worker.js", import.meta.url), { workerData: { helpers } });
    stopHelped = () => helped.terminate();
    const helpedStep = async (): Promise<Timed> => {
      // once() rejects on the worker's error and removes both listeners whichever comes.
      const answer = once(helped, "message");
      helped.postMessage(CALLS);
      return { ms: (await answer)[0] as number };
    };
    const contenders: Contender[] = [
      ["in-process step", timed(async () => check(step(data, data, grads)))],
      ...(helpers > 0 ? ([[HELPED_STEP(helpers), helpedStep]] as Contender[]) : []),
      ...(C_CLIENTS ? cClients : jsClients),
    ];
    if (!C_CLIENTS) console.log(`wrk or h2load missing (${INSTALL_HINT}): JavaScript clients in this process, whose own time counts`);
    for (const [, run] of contenders) await run();
    const times = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
    const ratios = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
    const helpedRatios = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
    const clientCpu = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const perCall = new Map<string, number>();
      for (const [name, run] of contenders) {
        const t = await run();
        perCall.set(name, t.ms);
        times.get(name)?.push(t.ms);
        if (t.clientCpu !== undefined) clientCpu.get(name)?.push(t.clientCpu);
      }
      const base = perCall.get("in-process step") as number;
      const helpedBase = perCall.get(HELPED_STEP(helpers));
      for (const [name] of contenders) {
        ratios.get(name)?.push((perCall.get(name) as number) / base);
        if (helpedBase !== undefined) helpedRatios.get(name)?.push((perCall.get(name) as number) / helpedBase);
      }
    }
    checkHttp(await httpPost(agent, url, w3.http.body, w3.http.headers), w3);
    checkGrpc(w3.checkGrpc(await grpcCall(client, DIFFERENTIATE, w3.grpc)));
    checkJson(await httpPost(agent, url, json, { "content-type": "application/json" }));
    const how = C_CLIENTS ? `wrk -c1 / h2load -c1 -m1 for ${SECONDS} s` : `${CALLS} calls`;
    console.log(`W3 training step, one request at a time, ${ROUNDS} interleaved rounds (${how}; ms per call, median):`);
    for (const [name] of contenders) {
      const cpu = clientCpu.get(name) as number[];
      const alike = helpedRatios.get(name) as number[];
      console.log(
        `  ${name.padEnd(34)} ${median(times.get(name) as number[])
          .toFixed(2)
          .padStart(8)}   ${median(ratios.get(name) as number[]).toFixed(2)}× the in-process step${
          alike.length > 0 ? `   ${median(alike).toFixed(2)}× with helpers` : ""
        }${cpu.length > 0 ? `   client CPU ${median(cpu).toFixed(2)} s/s` : ""}`,
      );
    }
    console.log("  targets (issue 10): binary framing and gRPC raw bytes ≤ 1.5×, JSON with base64 ≤ 3×");
    if (helpers > 0) {
      console.log(
        `  the service's workers split large matrix products with ${helpers} helper thread(s) (ADJOINT_MATMUL_HELPERS); "with helpers": against the in-process step split the same way`,
      );
    }
    console.log("  floor: the same request and answer bytes through a route or method that computes nothing (echo-server.ts)");
    agent.destroy();
    client.close();
    echoAgent.destroy();
    echoClient.close();
  } finally {
    await stopHelped?.();
    await stopProcess(service.child);
    if (echo) await stopProcess(echo.child);
  }
}

/** The echo server (echo-server.ts), answering the service's own answer bytes. */
function startEcho(binary: Buffer, binaryHeaderLength: string, json: Buffer, grpcAnswer: Buffer): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), "adjoint-step-"));
  const files = { ECHO_BINARY: binary, ECHO_JSON: json, ECHO_GRPC: grpcAnswer };
  const env: NodeJS.ProcessEnv = { ...process.env, ECHO_BINARY_HEADER_LENGTH: binaryHeaderLength };
  for (const [key, bytes] of Object.entries(files)) {
    env[key] = join(dir, key.toLowerCase());
    writeFileSync(env[key] as string, bytes);
  }
  return startProcess(process.execPath, [fileURLToPath(new URL("./echo-server.js", import.meta.url))], "echo is serving", { env });
}

function check(loss: number): void {
  if (Math.abs(loss - W3_REFERENCE_LOSS) > 1e-9) throw new Error(`W3 loss ${loss}, expected ${W3_REFERENCE_LOSS}`);
}

function ok(a: { status: number; body: Buffer }): void {
  if (a.status !== 200) throw new Error(`HTTP ${a.status}: ${a.body.toString().slice(0, 200)}`);
}

function checkHttp(a: { status: number; headerLength: string | null; body: Buffer }, s: ReturnType<(typeof SCENARIOS)["W3"]>): void {
  const bad = s.checkHttp(a.status, a.headerLength, a.body);
  if (bad) throw new Error(bad);
}

function checkGrpc(bad: string | undefined): void {
  if (bad) throw new Error(bad);
}

function checkJson(a: { status: number; body: Buffer }): void {
  if (a.status !== 200) throw new Error(`HTTP ${a.status}: ${a.body.toString().slice(0, 200)}`);
  check((JSON.parse(a.body.toString()) as { value: number }).value);
}

await main();
