import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { MessageChannel, receiveMessageOnPort, Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Started, startProcess, stopProcess } from "../../bench/load/process.js";
import { w2Point, w2ValueAndGradient } from "../../bench/workloads/w2.js";
import { generateW3 } from "../../bench/workloads/w3.js";
import { builtFile } from "../build-output.js";
import { ROOT } from "./helpers.js";

/**
 * k6 cannot be installed here, so the scripts are checked three ways: they parse as ES modules and
 * import only k6's modules and their own lib/; their options are what a k6 run needs; and their
 * scenario functions run, once each, against a real service through stand-ins for k6's modules whose
 * calls are synchronous as k6's are (test/deploy/k6-bridge.mjs), with the scripts' own checks.
 */
const K6_DIR = join(ROOT, "bench/k6");
const SCRIPTS = ["http.js", "grpc.js"] as const;
const LIBS = ["lib/bodies.js", "lib/options.js"] as const;
const K6_MODULES: Record<string, string> = {
  k6: "k6",
  "k6/http": "http",
  "k6/net/grpc": "grpc",
  "k6/metrics": "metrics",
  "k6/data": "data",
  "k6/encoding": "encoding",
};
/** The parts of lib/bodies.js (plain JavaScript, no types) that the tests call directly. */
const bodies = (await import(pathToFileURL(join(K6_DIR, "lib/bodies.js")).href)) as {
  W2_N: number;
  w2Point(n: number): number[];
  rosenbrock(x: number[]): { value: number; gradient: number[] };
  w3Data(): { name: string; shape: number[]; data: Float64Array }[];
};
const IMPORT = /^import\s+([\s\S]+?)\s+from\s+"([^"]+)";$/gm;

function imports(source: string): { what: string; from: string }[] {
  return [...source.matchAll(IMPORT)].map((m) => ({ what: m[1], from: m[2] }));
}

describe("the k6 scripts, statically", () => {
  it("parse as ES modules", () => {
    const dir = mkdtempSync(join(tmpdir(), "adjoint-k6-check-"));
    try {
      for (const file of [...SCRIPTS, ...LIBS]) {
        const copy = join(dir, file.replace("/", "-").replace(/\.js$/, ".mjs"));
        writeFileSync(copy, readFileSync(join(K6_DIR, file)));
        execFileSync(process.execPath, ["--check", copy]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("import only k6's modules and their own lib/, and use nothing of Node", () => {
    for (const file of [...SCRIPTS, ...LIBS]) {
      const source = readFileSync(join(K6_DIR, file), "utf8");
      const found = imports(source);
      expect(source.match(/^\s*import\b/gm)?.length ?? 0, `${file}: every import is one line of the form import … from "…";`).toBe(
        found.length,
      );
      for (const { from } of found) expect(from in K6_MODULES || LIBS.some((l) => from === `./${l}`), `${file} imports ${from}`).toBe(true);
      if (file.startsWith("lib/")) expect(found).toEqual([]);
      const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
      for (const node of [/\brequire\(/, /\bprocess\./, /\bBuffer\b/, /\bnode:/, /\bfetch\(/, /\bimport\(/, /\bglobalThis\b/]) {
        expect(node.test(code), `${file} uses ${node}`).toBe(false);
      }
    }
  });

  it("load the .proto from the repository's proto/ and document reflection", () => {
    const source = readFileSync(join(K6_DIR, "grpc.js"), "utf8");
    const load = /client\.load\(\["([^"]+)"\], "([^"]+)"\)/.exec(source);
    expect(load).not.toBeNull();
    expect(existsSync(resolve(K6_DIR, load![1], load![2]))).toBe(true);
    expect(source).toContain("reflect: true");
  });
});

describe("bench/k6/lib/bodies.js", () => {
  it("draws W3 exactly as bench/workloads/w3.ts does", () => {
    const d = generateW3();
    const mine = Object.fromEntries(bodies.w3Data().map((t) => [t.name, t.data]));
    expect(mine.x).toEqual(d.X);
    expect(mine["fc1.weight"]).toEqual(d.W1);
    expect(mine["fc1.bias"]).toEqual(d.b1);
    expect(mine["fc2.weight"]).toEqual(d.W2);
    expect(mine["fc2.bias"]).toEqual(d.b2);
    expect(mine.y).toEqual(Float64Array.from(d.labels));
  });

  it("has the closed-form Rosenbrock gradient of bench/workloads/w2.ts", () => {
    const x = w2Point(bodies.W2_N);
    const g = new Float64Array(x.length);
    const f = w2ValueAndGradient(x, g);
    const mine = bodies.rosenbrock(bodies.w2Point(bodies.W2_N));
    expect(mine.value).toBeCloseTo(f, 9);
    for (let i = 0; i < g.length; i++) expect(Math.abs(mine.gradient[i] - g[i])).toBeLessThan(1e-9);
  });
});

/** Stand-ins for k6's modules, recording checks and metric samples. */
// biome-ignore lint/suspicious/noExplicitAny: what k6 answers is untyped JSON, as in a k6 script
type K6Value = any;

function k6StandIns(call: (req: Record<string, unknown>) => K6Value) {
  const checks: { name: string; ok: boolean }[] = [];
  const rates: Record<string, boolean[]> = {};
  const loads: { paths: string[]; files: string[] }[] = [];
  const connects: { addr: string; params: Record<string, unknown> }[] = [];
  class Rate {
    constructor(readonly name: string) {
      rates[name] = [];
    }
    add(v: unknown) {
      rates[this.name].push(Boolean(v));
    }
  }
  class Client {
    addr = "";
    load(paths: string[], ...files: string[]) {
      loads.push({ paths, files });
    }
    connect(addr: string, params: Record<string, unknown>) {
      this.addr = addr;
      connects.push({ addr, params });
    }
    invoke(method: string, message: unknown, params: unknown) {
      const last = connects[connects.length - 1];
      return call({ kind: "grpc", addr: this.addr, method, message, params: { ...last?.params, ...(params as object) } });
    }
    close() {}
  }
  const modules = {
    k6: {
      check(value: unknown, sets: Record<string, (v: unknown) => boolean>) {
        let all = true;
        for (const [name, fn] of Object.entries(sets)) {
          const ok = Boolean(fn(value));
          checks.push({ name, ok });
          all &&= ok;
        }
        return all;
      },
      sleep() {},
    },
    http: {
      post(url: string, body: string, params: { headers?: Record<string, string> }) {
        const r = call({ kind: "http", method: "POST", url, body, headers: params?.headers });
        return { ...r, json: () => JSON.parse(r.body) };
      },
    },
    grpc: { Client, StatusOK: 0, StatusNotFound: 5 },
    metrics: { Rate },
    data: {
      SharedArray: function SharedArray(_name: string, make: () => unknown[]) {
        return make();
      },
    },
    encoding: {
      b64encode: (input: ArrayBuffer | string) => Buffer.from(typeof input === "string" ? input : new Uint8Array(input)).toString("base64"),
      b64decode: (text: string, _enc?: string, format?: string) => {
        const b = Buffer.from(text, "base64");
        return format === "s" ? b.toString() : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      },
    },
  };
  return { modules, checks, rates, loads, connects };
}

/** Synchronous calls through the bridge worker. */
function bridge() {
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL("./k6-bridge.mjs", import.meta.url), { workerData: { port: port2, signal }, transferList: [port2] });
  const call = (req: Record<string, unknown>) => {
    Atomics.store(signal, 0, 0);
    port1.postMessage(req);
    if (Atomics.wait(signal, 0, 0, 120_000) === "timed-out") throw new Error("the bridge did not answer");
    const answer = receiveMessageOnPort(port1)?.message;
    if (answer?.failure) throw new Error(answer.failure);
    return answer;
  };
  return { call, close: () => worker.terminate() };
}

/** Imports a k6 script with its k6 imports bound to the stand-ins and its lib/ imports to the real files. */
async function loadScript(file: string, standIns: ReturnType<typeof k6StandIns>["modules"], env: Record<string, string>, dir: string) {
  const source = readFileSync(join(K6_DIR, file), "utf8").replace(IMPORT, (_all, what: string, from: string) => {
    if (from.startsWith("./")) return `import ${what} from ${JSON.stringify(pathToFileURL(join(K6_DIR, from)).href)};`;
    const binding = what.startsWith("{") ? what.replace(/\s+as\s+/g, ": ") : what;
    return `const ${binding} = globalThis.__k6.${K6_MODULES[from]};`;
  });
  const g = globalThis as Record<string, unknown>;
  g.__k6 = standIns;
  g.__ENV = env;
  g.open = (path: string) => readFileSync(resolve(K6_DIR, path), "utf8");
  const copy = join(dir, `${file.replace(/\.js$/, "")}-${Date.now()}.mjs`);
  writeFileSync(copy, source);
  return (await import(pathToFileURL(copy).href)) as Record<string, K6Value>;
}

describe("the k6 scripts, run once per scenario against the service", () => {
  let service: Started;
  let dir: string;
  let bridged: ReturnType<typeof bridge> | undefined;
  beforeAll(async () => {
    const main = builtFile("dist/src/main.js");
    // The bridge worker imports the built gRPC code (k6-bridge.mjs), so it starts once the build is known to be there.
    builtFile("dist/src/grpc/gen/adjoint/v1/adjoint_pb.js");
    bridged = bridge();
    dir = mkdtempSync(join(tmpdir(), "adjoint-k6-"));
    service = await startProcess(process.execPath, [main], "adjoint is serving", {
      env: { ...process.env, ADJOINT_HOST: "127.0.0.1", ADJOINT_HTTP_PORT: "0", ADJOINT_GRPC_PORT: "0", ADJOINT_WORKERS: "1" },
    });
  });
  afterAll(async () => {
    await bridged?.close();
    if (service) await stopProcess(service.child);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const file of SCRIPTS) {
    it(`${file}: ramping arrival rates, p95/p99 and error thresholds, and every scenario's checks pass`, async () => {
      const k6 = k6StandIns((req) => bridged!.call(req));
      const env = { BASE_URL: `http://127.0.0.1:${service.httpPort}`, GRPC_ADDR: `127.0.0.1:${service.grpcPort}` };
      const script = await loadScript(file, k6.modules, env, dir);
      const { scenarios, thresholds } = script.options;
      expect(Object.keys(scenarios)).toEqual(["w1", "w2", "w3"]);
      const metric = file === "http.js" ? "http_req_duration" : "grpc_req_duration";
      for (const [name, s] of Object.entries(scenarios as Record<string, Record<string, K6Value>>)) {
        expect(s.executor).toBe("ramping-arrival-rate");
        expect(s.preAllocatedVUs).toBeGreaterThan(0);
        expect(s.stages.length).toBeGreaterThan(1);
        expect(typeof script[s.exec]).toBe("function");
        expect(thresholds[`${metric}{scenario:${name}}`]).toEqual([expect.stringMatching(/^p\(95\)</), expect.stringMatching(/^p\(99\)</)]);
      }
      expect(thresholds.adjoint_errors).toEqual(["rate<0.01"]);
      if (file === "grpc.js") {
        expect(k6.loads).toEqual([{ paths: ["../../proto"], files: ["adjoint/v1/adjoint.proto"] }]);
      } else {
        expect(thresholds.http_req_failed).toEqual(["rate<0.01"]);
      }
      for (const name of Object.keys(scenarios)) script[scenarios[name].exec]();
      expect(k6.checks.length).toBe(6);
      expect(k6.checks.filter((c) => !c.ok)).toEqual([]);
      expect(k6.rates.adjoint_errors).toEqual([false, false, false]);
    }, 120_000);
  }
});
