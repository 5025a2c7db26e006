import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Started, startProcess, stopProcess } from "../../bench/load/process.js";
import {
  buildContext,
  copyArgs,
  envPairs,
  execForm,
  healthcheck,
  instructions,
  parseDockerfile,
  ROOT,
  runCommand,
  type Stage,
} from "./helpers.js";

/**
 * The Dockerfile's recipe, without a Docker engine: each stage in a folder of its own standing for
 * its /app, the build context copied as `docker build` would send it (.dockerignore applied), every
 * COPY and RUN of the Dockerfile carried out in order (the RUNs are docker/recipe.sh steps: npm ci and
 * the build, then the production dependencies), and the result started with the final stage's CMD and
 * ENV. Then: the HEALTHCHECK command passes, the worked example is right, and SIGTERM stops it cleanly.
 * It installs dependencies twice (a minute or two), so it runs with `npm run test:interop` (CI), not
 * with `npm test`.
 */
const ENABLED = process.env.ADJOINT_INTEROP === "1";
const WORKDIR = "/app";

/** A port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** The environment of a stage's commands: ours without the service's settings, and the stage's ENV. */
function stageEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ADJOINT_") && k !== "NODE_ENV"));
  return { ...base, ...env };
}

/** Carries out a stage's instructions in `dir` (its /app); returns its ENV. */
function buildStage(stage: Stage, dir: string, context: string, stageDirs: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  mkdirSync(dir, { recursive: true });
  for (const { op, args } of stage.instructions) {
    if (op === "WORKDIR") expect(args).toBe(WORKDIR);
    else if (op === "ENV") Object.assign(env, envPairs(args));
    else if (op === "RUN")
      execFileSync("/bin/sh", ["-c", runCommand(args)], {
        cwd: dir,
        env: stageEnv(env),
        stdio: ["ignore", "pipe", "pipe"],
        maxBuffer: 1 << 26,
      });
    else if (op === "COPY") {
      const { from, sources, dest } = copyArgs(args);
      const target = join(dir, dest.replace(/^\/app\/?/, ""));
      for (const source of sources) {
        const src = from ? join(stageDirs[from], source.replace(/^\/app\/?/, "")) : join(context, source);
        if (!existsSync(src)) throw new Error(`COPY ${args}: ${source} is not there`);
        const into = dest.endsWith("/") || sources.length > 1 ? join(target, source === "." ? "" : source.split("/").pop()!) : target;
        mkdirSync(dirname(into), { recursive: true });
        cpSync(src, into, { recursive: true });
      }
    }
  }
  return env;
}

describe.skipIf(!ENABLED)("the Dockerfile's recipe, in a clean copy of the repository", () => {
  let tmp = "";
  let service: Started | undefined;
  afterAll(async () => {
    if (service) await stopProcess(service.child);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("builds, starts with the image's command and environment, passes its health check, answers the worked example and drains on SIGTERM", async () => {
    tmp = mkdtempSync(join(tmpdir(), "adjoint-recipe-"));
    const context = join(tmp, "context");
    for (const file of buildContext()) {
      mkdirSync(dirname(join(context, file)), { recursive: true });
      cpSync(join(ROOT, file), join(context, file));
      chmodSync(join(context, file), statSync(join(ROOT, file)).mode);
    }
    const stages = parseDockerfile(readFileSync(join(ROOT, "docker/Dockerfile"), "utf8"));
    const dirs: Record<string, string> = {};
    let env: Record<string, string> = {};
    for (const stage of stages) {
      const dir = join(tmp, stage.name ?? "stage");
      dirs[stage.name ?? "stage"] = dir;
      env = buildStage(stage, dir, context, dirs);
    }
    const run = stages[stages.length - 1];
    const runDir = dirs[run.name ?? "stage"];
    // Production dependencies only, and none of the build's sources.
    for (const dev of ["typescript", "vitest", "@biomejs/biome", "autocannon"])
      expect(existsSync(join(runDir, "node_modules", dev)), dev).toBe(false);
    expect(existsSync(join(runDir, "node_modules/fastify"))).toBe(true);
    expect(existsSync(join(runDir, "src"))).toBe(false);

    // The image's CMD and ENV; only the ports differ, so that the test can run beside anything.
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    const runEnv = stageEnv({ ...env, ADJOINT_HTTP_PORT: String(httpPort), ADJOINT_GRPC_PORT: String(grpcPort) });
    const cmd = execForm(instructions(run, "CMD")[0]) as string[];
    service = await startProcess(cmd[0], cmd.slice(1), "adjoint is serving", { cwd: runDir, env: runEnv, timeoutMs: 60_000 });
    expect([service.httpPort, service.grpcPort]).toEqual([httpPort, grpcPort]);

    const health = healthcheck(instructions(run, "HEALTHCHECK")[0]).cmd;
    execFileSync(health[0], health.slice(1), { cwd: runDir, env: runEnv, timeout: 10_000 });

    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/differentiate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ function: { expression: "x1*exp(-0.5*(x1^2+x2^2))" }, point: { x1: 2, x2: 0.5 } }),
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { value: number; gradient: { x1: number; x2: number } };
    expect(answer.value).toBeCloseTo(0.2388659365334392, 15);
    expect(answer.gradient.x1).toBeCloseTo(-0.3582989048001589, 15);
    expect(answer.gradient.x2).toBeCloseTo(-0.1194329682667196, 15);

    // docker stop: SIGTERM (the STOPSIGNAL) to the process the CMD became; it drains and exits 0.
    expect(instructions(run, "STOPSIGNAL")).toEqual(["SIGTERM"]);
    const code = await stopProcess(service.child, 20_000);
    service = undefined;
    expect(code).toBe(0);
  }, 600_000);
});
