import { spawn } from "node:child_process";
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { describe, expect, it } from "vitest";
import { SERVICE_NAME } from "../../src/grpc/server.js";
import { builtFile } from "../build-output.js";
import { collectJsonLines, heavyExpression, startTestServer, WORKED } from "./helpers.js";

const HealthClient = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, "Health");

function healthOf(port: number) {
  const client = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  };
  const check = (service: string) =>
    new Promise<string>((resolve, reject) => client.check({ service }, (err, res) => (err ? reject(err) : resolve(res?.status ?? ""))));
  return { client, check };
}

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

describe("health and readiness through a graceful shutdown", () => {
  it("goes not-ready at once, keeps answering while draining, finishes work in flight, then closes", async () => {
    const s = await startTestServer({ workers: 1, drainMs: 1500 });
    const health = healthOf(s.app.grpcPort);
    expect(await health.check("")).toBe("SERVING");
    expect(await health.check(SERVICE_NAME)).toBe("SERVING");
    expect((await s.get("/readyz")).status).toBe(200);

    // Work in flight on the pool when the shutdown begins.
    const jobs = async () => Number(/adjoint_jobs_total\{where="pool"\} (\d+)/.exec((await s.get("/metrics")).text)?.[1] ?? 0);
    const inFlight = s.post("/v1/differentiate", {
      function: { expression: heavyExpression(100) },
      columns: { x: new Array(5000).fill(0.25) },
    });
    await until(async () => (await jobs()) >= 1);

    const done = s.app.shutdown();
    expect((await s.get("/readyz")).status).toBe(503);
    expect((await s.get("/healthz")).status).toBe(200);
    expect(await health.check("")).toBe("NOT_SERVING");
    expect(await health.check(SERVICE_NAME)).toBe("NOT_SERVING");
    // While draining, requests are still answered.
    expect((await s.post("/v1/differentiate", WORKED)).status).toBe(200);

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect((answer.body.columns as { value: { shape: number[] } }).value.shape).toEqual([5000]);
    await done;
    await expect(fetch(`${s.base}/healthz`)).rejects.toThrow();
    await expect(health.check("")).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    health.client.close();
    s.client.close();
  });

  it("starts from the command line and stops cleanly on SIGTERM", async () => {
    const main = builtFile("dist/src/main.js");
    const child = spawn(process.execPath, [main, "--http-port", "0", "--grpc-port", "0", "--host", "127.0.0.1", "--workers", "1"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: Record<string, unknown>[] = [];
    collectJsonLines(child.stdout, lines);
    await until(async () => lines.some((l) => l.msg === "adjoint is serving") || child.exitCode !== null);
    const serving = lines.find((l) => l.msg === "adjoint is serving") as { httpPort: number; grpcPort: number };
    expect(serving).toBeDefined();
    const res = await fetch(`http://127.0.0.1:${serving.httpPort}/v1/differentiate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(WORKED),
    });
    expect(((await res.json()) as { value: number }).value).toBeCloseTo(0.23886593653343924, 15);
    child.kill("SIGTERM");
    const [code] = await once(child, "close");
    expect(code).toBe(0);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["signal received", "adjoint stopped"]));
  });
});
