import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningAdjoint, startAdjoint } from "../../src/main.js";
import { loadConfig } from "../../src/service/config.js";
import { SETTING_ENVS, settingDefault, yamlDocuments } from "./helpers.js";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes manifests are read as untyped YAML
type Obj = Record<string, any>;

const kustomization = yamlDocuments("docker/k8s/kustomization.yaml")[0] as { resources: string[] };
const docs = kustomization.resources.flatMap((f) => yamlDocuments(`docker/k8s/${f}`)) as Obj[];
const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
const [deployment] = byKind("Deployment");
const pod = deployment.spec.template;
const [container] = pod.spec.containers as Obj[];
const env = Object.fromEntries((container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
const HTTP = settingDefault("httpPort") as number;
const GRPC = settingDefault("grpcPort") as number;

/** The container port a probe or Service names (by name or number). */
function containerPort(port: string | number): number {
  if (typeof port === "number") return port;
  const found = (container.ports as Obj[]).find((p) => p.name === port);
  if (!found) throw new Error(`no container port named ${port}`);
  return found.containerPort;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** CPU quantity in cores ("2", "500m"). */
function cores(q: string): number {
  return q.endsWith("m") ? Number(q.slice(0, -1)) / 1000 : Number(q);
}

describe("docker/k8s manifests", () => {
  it("parse, and every resource listed by kustomization.yaml is there once", () => {
    expect(docs.map((d) => d.kind).sort()).toEqual([
      "Deployment",
      "HorizontalPodAutoscaler",
      "PodDisruptionBudget",
      "Service",
      "Service",
      "Service",
    ]);
    for (const d of docs) expect(d.metadata?.name, d.kind).toBeTruthy();
  });

  it("the Deployment selects its own pods and serves the service's default ports", () => {
    expect(deployment.apiVersion).toBe("apps/v1");
    expect(selects(deployment.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
    expect(containerPort("http")).toBe(HTTP);
    expect(containerPort("grpc")).toBe(GRPC);
    expect(Number(env.ADJOINT_HTTP_PORT ?? HTTP)).toBe(HTTP);
    expect(Number(env.ADJOINT_GRPC_PORT ?? GRPC)).toBe(GRPC);
    for (const name of Object.keys(env)) expect(SETTING_ENVS.has(name), name).toBe(true);
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });

  it("probes liveness on /healthz, readiness on /readyz and start-up by the native gRPC health probe", () => {
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    expect(containerPort(container.livenessProbe.httpGet.port)).toBe(HTTP);
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(containerPort(container.readinessProbe.httpGet.port)).toBe(HTTP);
    expect(containerPort(container.startupProbe.grpc.port)).toBe(GRPC);
    expect(container.startupProbe.grpc.service).toBe("adjoint.v1.AdjointService");
  });

  it("requests and limits CPU and memory, with a worker per CPU of the limit", () => {
    const { requests, limits } = container.resources;
    for (const r of [requests, limits]) expect(Object.keys(r).sort()).toEqual(["cpu", "memory"]);
    expect(cores(limits.cpu)).toBeGreaterThanOrEqual(cores(requests.cpu));
    // One worker thread per CPU of the limit in all, over the processes.
    expect(Number(env.ADJOINT_PROCESSES) * Number(env.ADJOINT_WORKERS)).toBeLessThanOrEqual(cores(limits.cpu));
  });

  it("terminates gracefully: the grace period covers the drain and the longest request", () => {
    const drain = Number(env.ADJOINT_DRAIN_MS ?? settingDefault("drainMs"));
    const limit = Number(env.ADJOINT_TIME_LIMIT_MS ?? settingDefault("timeLimitMs"));
    expect(drain).toBeGreaterThan(0); // endpoints are removed while the pod still answers
    expect(drain / 1000).toBeGreaterThanOrEqual(container.readinessProbe.periodSeconds);
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual((drain + limit) / 1000 + 5);
  });

  it("has a Service for each port, selecting the Deployment's pods by named ports", () => {
    const services = byKind("Service");
    for (const s of services) {
      expect(selects(s.spec.selector, pod.metadata.labels), s.metadata.name).toBe(true);
      for (const p of s.spec.ports) expect(containerPort(p.targetPort)).toBe(p.port);
    }
    const ports = (s: Obj) => (s.spec.ports as Obj[]).map((p) => p.port);
    const clustered = services.filter((s) => s.spec.clusterIP !== "None");
    expect(clustered.map(ports)).toEqual([[HTTP], [GRPC]]);
    const headless = services.filter((s) => s.spec.clusterIP === "None");
    expect(headless.map(ports)).toEqual([[GRPC]]);
    for (const s of services) for (const p of s.spec.ports) if (p.port === GRPC) expect(p.appProtocol).toBe("kubernetes.io/h2c");
  });

  it("scales on CPU (autoscaling/v2) and keeps a pod through voluntary disruptions", () => {
    const [hpa] = byKind("HorizontalPodAutoscaler");
    expect(hpa.apiVersion).toBe("autoscaling/v2");
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: deployment.metadata.name });
    expect(hpa.spec.metrics).toEqual([
      { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } },
    ]);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    const [pdb] = byKind("PodDisruptionBudget");
    expect(pdb.apiVersion).toBe("policy/v1");
    expect(selects(pdb.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
  });
});

describe("the probes' targets on a running service", () => {
  let app: RunningAdjoint;
  beforeAll(async () => {
    const config = loadConfig([], {}, { host: "127.0.0.1", httpPort: 0, grpcPort: 0, workers: 1, logLevel: "silent" });
    app = await startAdjoint(config, pino({ level: "silent" }));
  });
  afterAll(() => app.shutdown());

  it("answers /healthz and /readyz with 200 and the gRPC health service with SERVING", async () => {
    for (const path of [container.livenessProbe.httpGet.path, container.readinessProbe.httpGet.path]) {
      expect((await fetch(`http://127.0.0.1:${app.httpPort}${path}`)).status, path).toBe(200);
    }
    const Health = grpc.makeGenericClientConstructor(healthService, "Health");
    const client = new Health(`127.0.0.1:${app.grpcPort}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string | number }) => void): void;
    };
    const res = await new Promise<{ status: string | number }>((resolve, reject) =>
      client.check({ service: container.startupProbe.grpc.service }, (err, r) =>
        err ? reject(err) : resolve(r as { status: string | number }),
      ),
    );
    client.close();
    expect(res.status === "SERVING" || res.status === 1).toBe(true);
  });
});
