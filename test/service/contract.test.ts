import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import Ajv from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModeSchema } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { loadOpenApi } from "../../src/http/openapi.js";
import { SETTINGS } from "../../src/service/config.js";
import { MODE_NAMES } from "../../src/service/modes.js";
import { startTestServer, type TestServer } from "./helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("the contracts agree with the code", () => {
  it("the modes are the same in the service, openapi.yaml and the proto", () => {
    const schemas = loadOpenApi().doc.components.schemas as Record<string, { enum?: string[] }>;
    expect(schemas.Mode.enum).toEqual(MODE_NAMES);
    const protoModes = ModeSchema.values.filter((v) => v.number !== 0).map((v) => v.localName.toLowerCase());
    expect(protoModes).toEqual(MODE_NAMES);
  });

  it("every setting is documented in docs/service.md", () => {
    const doc = readFileSync(join(root, "docs/service.md"), "utf8");
    for (const setting of SETTINGS) {
      expect(doc, setting.env).toContain(`\`${setting.env}\``);
      expect(doc, setting.flag).toContain(`\`--${setting.flag}\``);
    }
  });

  it("the generated protobuf code is up to date with proto/", () => {
    const out = mkdtempSync(join(tmpdir(), "adjoint-gen-"));
    try {
      const buf = join(root, "node_modules", ".bin", "buf");
      execFileSync(buf, ["generate", "--template", "proto/buf.gen.yaml", "-o", out], { cwd: root, stdio: "pipe" });
      const fresh = readFileSync(join(out, "src/grpc/gen/adjoint/v1/adjoint_pb.ts"), "utf8");
      const committed = readFileSync(join(root, "src/grpc/gen/adjoint/v1/adjoint_pb.ts"), "utf8");
      expect(committed, "run `npm run generate` after editing proto/").toBe(fresh);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe("the servers describe themselves", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.close();
  });

  it("every HTTP route is in openapi.yaml, and every path there is served", () => {
    const documented = Object.keys(loadOpenApi().doc.paths as Record<string, unknown>).map((p) => p.replace(/\{(\w+)\}/g, ":$1"));
    // printRoutes draws a tree: each line is a path segment, indented four columns per level.
    const stack: string[] = [];
    const routes: string[] = [];
    for (const line of s.app.http.printRoutes({ commonPrefix: false }).split("\n")) {
      const m = /^([│ ]*)[├└]── (\S+) \(/.exec(line);
      if (!m) continue;
      const depth = m[1].length / 4;
      stack.length = depth;
      stack.push(m[2]);
      routes.push(stack.join(""));
    }
    const served = routes.filter((r) => r !== "/docs" && !r.startsWith("/docs/"));
    expect(served.length).toBeGreaterThan(5);
    for (const route of served) expect(documented, route).toContain(route);
    for (const path of documented) expect(routes, path).toContain(path);
  });

  it("its answers match the response schema openapi.yaml documents, sparse blocks and all", async () => {
    // As fastify's validator reads the document (src/http/server.ts), with every error listed.
    const ajv = new Ajv.default({ strict: false, allErrors: true });
    ajv.addSchema({ $id: "openapi", components: loadOpenApi().doc.components });
    const answerSchema = ajv.compile({ $ref: "openapi#/components/schemas/DifferentiateResponse" });
    const worked = { expression: "x1*exp(-0.5*(x1^2+x2^2))" };
    const rosenbrock = { expression: "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)", inputs: [{ name: "x", shape: [4] }] };
    const x = { shape: [4], data: [0.5, -1, 2, 0.25] };
    const requests = [
      { function: worked, point: { x1: 2, x2: 0.5 } },
      {
        function: worked,
        points: [
          { x1: 2, x2: 0.5 },
          { x1: 1, x2: 0 },
        ],
        mode: "forward",
      },
      { function: worked, point: { x1: 2, x2: 0.5 }, trace: true },
      { function: worked, columns: { x1: [2, 1], x2: [0.5, 0] } },
      { function: worked, point: { x1: 2, x2: 0.5 }, mode: "hessian" },
      { function: worked, columns: { x1: [2, 1], x2: [0.5, 0] }, mode: "laplacian" },
      { function: worked, points: [{ x1: 2, x2: 0.5 }], mode: "derivative", wrt: ["x1"], order: 3 },
      { function: rosenbrock, point: { x } },
      { function: rosenbrock, point: { x }, encoding: "base64" },
      { function: rosenbrock, points: [{ x }, { x }], mode: "forward", tangent: { x } },
      { function: rosenbrock, columns: { x: { shape: [2, 4], data: [...x.data, ...x.data] } }, mode: "hvp", tangent: { x } },
      { function: rosenbrock, point: { x }, mode: "jacobian" },
      { function: rosenbrock, point: { x }, mode: "jacobian", sparse: true },
      { function: rosenbrock, point: { x }, mode: "hessian", sparse: true },
      { function: rosenbrock, point: { x }, mode: "hessian", sparse: true, encoding: "base64" },
    ];
    const mismatches: string[] = [];
    for (const request of requests) {
      const r = await s.post("/v1/differentiate", request);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      if (!answerSchema(r.body))
        mismatches.push(`${JSON.stringify(request)}: ${JSON.stringify(answerSchema.errors?.map((e) => [e.instancePath, e.message]))}`);
    }
    expect(mismatches).toEqual([]);
    // And it is a schema that can fail: an answer missing its id is not one.
    const { id: _, ...withoutId } = (await s.post("/v1/differentiate", requests[0])).body;
    expect(answerSchema(withoutId)).toBe(false);
  });

  it("lists its services through server reflection (so grpcurl needs no .proto)", async () => {
    const require = createRequire(import.meta.url);
    const protoPath = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");
    const pkg = grpc.loadPackageDefinition(loadSync(protoPath, { keepCase: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(
      `127.0.0.1:${s.app.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      ServerReflectionInfo(): grpc.ClientDuplexStream<
        unknown,
        { list_services_response?: { service: { name: string }[] }; file_descriptor_response?: { file_descriptor_proto: Buffer[] } }
      >;
    };
    const ask = (request: unknown) =>
      new Promise<{
        list_services_response?: { service: { name: string }[] };
        file_descriptor_response?: { file_descriptor_proto: Buffer[] };
      }>((resolve, reject) => {
        const call = client.ServerReflectionInfo();
        call.on("data", resolve);
        call.on("error", reject);
        call.write(request);
        call.end();
      });
    const list = await ask({ list_services: "*" });
    const names = list.list_services_response?.service.map((x) => x.name);
    expect(names).toEqual(expect.arrayContaining(["adjoint.v1.AdjointService", "grpc.health.v1.Health"]));
    const file = await ask({ file_containing_symbol: "adjoint.v1.AdjointService" });
    expect(file.file_descriptor_response?.file_descriptor_proto.length).toBeGreaterThan(0);
    client.close();
  });
});
