import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Started, startProcess, stopProcess } from "../../bench/load/process.js";
import { builtFile } from "../build-output.js";
import { ROOT } from "./helpers.js";

/**
 * The Python clients of examples/python against two replicas of the service (two processes, as behind
 * a load balancer): each registers the Rosenbrock function on one replica and then works with the
 * other, which has not seen the id, answers 404 / NOT_FOUND, and gets the definition again; both must
 * reach the minimum at all ones. Debian's own python3 and packages (installed when missing). Runs with
 * `npm run test:interop` (CI), not with `npm test`.
 */
const ENABLED = process.env.ADJOINT_INTEROP === "1";
const PYTHON = "/usr/bin/python3";
const run = promisify(execFile);

interface Summary {
  transport: string;
  converged: boolean;
  max_error: number;
  value: number;
  evaluations: number;
  replicas: number;
  resent: number;
  id: string;
  x: number[];
}

async function client(script: string, args: string[]): Promise<Summary> {
  const { stdout } = await run(PYTHON, [join(ROOT, "examples/python", script), ...args], { cwd: ROOT, timeout: 180_000 });
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Summary;
}

describe.skipIf(!ENABLED)("the Python clients (Debian packages only)", () => {
  const replicas: Started[] = [];
  beforeAll(async () => {
    execFileSync(join(ROOT, "examples/python/install-debian-packages.sh"), { stdio: "inherit", timeout: 600_000 });
    for (let i = 0; i < 2; i++) {
      replicas.push(
        await startProcess(process.execPath, [builtFile("dist/src/main.js")], "adjoint is serving", {
          env: { ...process.env, ADJOINT_HOST: "127.0.0.1", ADJOINT_HTTP_PORT: "0", ADJOINT_GRPC_PORT: "0", ADJOINT_WORKERS: "1" },
        }),
      );
    }
  }, 660_000);
  afterAll(async () => {
    await Promise.all(replicas.map((r) => stopProcess(r.child)));
  });

  const converged = (s: Summary, n: number) => {
    expect(s.converged).toBe(true);
    expect(s.max_error).toBeLessThan(1e-4);
    expect(s.x.length).toBe(n);
    for (const v of s.x) expect(v).toBeCloseTo(1, 4);
    expect(s.value).toBeLessThan(1e-8);
    expect(s.id).toMatch(/^fn_[0-9a-f]+$/);
  };

  it("REST (the adjoint package over http.client): L-BFGS-B reaches all ones, sending the definition to the replica that lacks the id", async () => {
    const urls = replicas.flatMap((r) => ["--url", `http://127.0.0.1:${r.httpPort}`]);
    const s = await client("rest_client.py", [...urls, "--n", "10"]);
    converged(s, 10);
    expect(s.replicas).toBe(2);
    expect(s.resent).toBe(1);
  }, 200_000);

  it("gRPC (grpcio, the package's stubs from protoc and grpc_python_plugin): after NOT_FOUND on a fresh replica", async () => {
    // n = 12: a function neither replica has seen yet (the REST test taught both the one of n = 10).
    const targets = replicas.flatMap((r) => ["--target", `127.0.0.1:${r.grpcPort}`]);
    const s = await client("grpc_client.py", [...targets, "--n", "12"]);
    converged(s, 12);
    expect(s.resent).toBe(1);
  }, 200_000);

  it("gRPC against a single replica: registered, then calls name the id and never resend", async () => {
    const target = `127.0.0.1:${replicas[0].grpcPort}`;
    const s = await client("grpc_client.py", ["--target", target, "--n", "10"]);
    converged(s, 10);
    expect(s.resent).toBe(0);
  }, 200_000);
});
