import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, SETTING_ENVS, settingDefault, yamlDocuments } from "./helpers.js";

type Service = Record<string, unknown> & {
  environment?: Record<string, string>;
  ports?: string[];
  profiles?: string[];
  deploy?: { replicas?: number; resources?: { limits?: { cpus?: string; memory?: string } } };
};
const compose = yamlDocuments("docker/compose.yaml")[0] as { services: Record<string, Service> };
const { adjoint, replica, lb } = compose.services;
const HTTP = settingDefault("httpPort") as number;
const GRPC = settingDefault("grpcPort") as number;

/** Seconds in a compose duration ("40s", "1m30s"). */
function seconds(d: string): number {
  let total = 0;
  for (const [, n, unit] of d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit as "s"];
  return total;
}

describe("docker/compose.yaml", () => {
  it("builds the Dockerfile and runs the service on its default ports with resource limits", () => {
    expect(adjoint.build).toEqual({ context: "..", dockerfile: "docker/Dockerfile" });
    expect(existsSync(join(ROOT, "docker", "..", "docker/Dockerfile"))).toBe(true);
    expect(adjoint.ports).toEqual([`${HTTP}:${HTTP}`, `${GRPC}:${GRPC}`]);
    expect(adjoint.profiles).toBeUndefined();
    for (const s of [adjoint, replica]) {
      expect(s.deploy?.resources?.limits?.cpus).toBeDefined();
      expect(s.deploy?.resources?.limits?.memory).toBeDefined();
      expect(s.init).toBe(true);
      for (const key of Object.keys(s.environment ?? {})) expect(SETTING_ENVS.has(key), key).toBe(true);
      // One worker per CPU of the limit.
      expect(Number(s.environment?.ADJOINT_PROCESSES) * Number(s.environment?.ADJOINT_WORKERS)).toBeLessThanOrEqual(
        Number(s.deploy?.resources?.limits?.cpus),
      );
    }
    expect(lb.deploy?.resources?.limits?.memory).toBeDefined();
  });

  it("gives docker stop time for the drain and the longest request", () => {
    for (const s of [adjoint, replica]) {
      const env = s.environment ?? {};
      const drain = Number(env.ADJOINT_DRAIN_MS ?? settingDefault("drainMs"));
      const limit = Number(env.ADJOINT_TIME_LIMIT_MS ?? settingDefault("timeLimitMs"));
      expect(s.stop_signal).toBe("SIGTERM");
      expect(seconds(s.stop_grace_period as string)).toBeGreaterThanOrEqual((drain + limit) / 1000);
    }
  });

  it("has a profile with several replicas behind nginx, which balances HTTP and gRPC (h2c) per request", () => {
    expect(replica.profiles).toEqual(["scaled"]);
    expect(lb.profiles).toEqual(["scaled"]);
    expect(replica.deploy?.replicas).toBeGreaterThan(1);
    expect(replica.ports).toBeUndefined();
    expect(lb.depends_on).toEqual({ replica: { condition: "service_healthy" } });
    expect(lb.volumes).toEqual(["./nginx.conf:/etc/nginx/nginx.conf:ro"]);
    expect(lb.ports?.map((p) => Number(p.split(":")[1]))).toEqual([HTTP, GRPC]);
    const conf = readFileSync(join(ROOT, "docker/nginx.conf"), "utf8");
    expect(conf).toContain(`server replica:${HTTP};`);
    expect(conf).toContain(`server replica:${GRPC};`);
    expect(conf).toContain(`listen ${HTTP};`);
    expect(conf).toMatch(new RegExp(`listen ${GRPC} http2;`));
    expect(conf).toContain("grpc_pass grpc://adjoint_grpc;");
    expect(conf).toContain("proxy_pass http://adjoint_http;");
    // Braces balance (nginx -t is not available here).
    expect(conf.split("{").length).toBe(conf.split("}").length);
  });
});
