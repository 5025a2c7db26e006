import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DifferentiateResponse, Mode, type Result, type Tensor } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import type { ModelDefinition } from "../../src/ir/model.js";
import { elements, grpcNodes, num, startTestServer, type TestServer, WORKED, WORKED_VALUES } from "./helpers.js";

/**
 * Client-chosen names are data. Every name that Object.prototype knows goes in every place a client
 * names something, over both transports: the reserved ones are refused with the field that holds
 * them, the others are answered exactly, and afterwards the process (Object.prototype, later answers,
 * the worked example) is unharmed. The function is f = a²·b at a = 3, b = 2 throughout: f = 18,
 * ∇f = (2ab, a²) = (12, 9), H = [[2b, 2a], [2a, 0]] = [[4, 6], [6, 0]].
 */

const RESERVED = ["__proto__", "constructor", "prototype"] as const;
const INHERITED = ["toString", "hasOwnProperty", "valueOf"] as const;
const NAMES = [...RESERVED, ...INHERITED] as const;
const isReserved = (name: string) => (RESERVED as readonly string[]).includes(name);

type Value = number | number[];
type Named = Record<string, Value>;

/** A function as either transport sends it. */
type Fn =
  | { expression: string; inputs?: string[] }
  | { expressions: Record<string, string> }
  | {
      graph: {
        inputs: string[];
        nodes: { id: string; op: string; args: string[]; attrs?: Record<string, unknown> }[];
        outputs: { name: string; node: string }[];
      };
    }
  | { model: ModelDefinition };

type TensorLike = { shape: number[]; data: number[] };

interface Req {
  readonly fn: Fn;
  readonly mode: "reverse" | "forward" | "jacobian" | "hessian";
  readonly form: "point" | "points" | "columns";
  readonly point: Record<string, number | TensorLike>;
  readonly wrt?: string[];
  readonly tangent?: Record<string, number>;
  readonly cotangent?: Record<string, number>;
  readonly initialize?: { seed: number };
}

/** What came back, the same from either transport: the first point's numbers, or the error's status and field. */
type Answer =
  | { readonly status: 200; readonly outputs: Named; readonly sections: Record<string, Named | Record<string, Named>> }
  | { readonly status: number; readonly field?: string; readonly detail: string };

/** Records with exactly these own keys, whatever they are (computed keys make own properties, even __proto__). */
function entries<T>(pairs: [string, T][]): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of pairs) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

function restFunction(fn: Fn): unknown {
  if ("expression" in fn) return { expression: fn.expression, ...(fn.inputs ? { inputs: fn.inputs.map((name) => ({ name })) } : {}) };
  if ("graph" in fn) return { graph: { ...fn.graph, inputs: fn.graph.inputs.map((name) => ({ name })) } };
  return fn;
}

function grpcFunction(fn: Fn) {
  if ("expression" in fn)
    return { source: { case: "expression" as const, value: fn.expression }, inputs: (fn.inputs ?? []).map((name) => ({ name })) };
  if ("expressions" in fn)
    return {
      source: {
        case: "expressions" as const,
        value: { outputs: Object.entries(fn.expressions).map(([name, text]) => ({ name, text })) },
      },
    };
  if ("graph" in fn) {
    const g = fn.graph;
    return {
      source: {
        case: "graph" as const,
        value: {
          inputs: g.inputs.map((name) => ({ name })),
          nodes: grpcNodes(g.nodes),
          outputs: g.outputs,
        },
      },
    };
  }
  return { source: { case: "model" as const, value: fn.model as never } };
}

const column = (v: number | TensorLike) => (typeof v === "number" ? [v] : { shape: [1, ...v.shape], data: v.data });

function restBody(r: Req): unknown {
  const batch =
    r.form === "point"
      ? { point: r.point }
      : r.form === "points"
        ? { points: [r.point] }
        : { columns: entries(Object.entries(r.point).map(([k, v]) => [k, column(v)])) };
  return {
    function: restFunction(r.fn),
    mode: r.mode,
    ...batch,
    ...(r.wrt ? { wrt: r.wrt } : {}),
    ...(r.tangent ? { tangent: r.tangent } : {}),
    ...(r.cotangent ? { cotangent: r.cotangent } : {}),
    ...(r.initialize ? { initialize: r.initialize } : {}),
  };
}

function grpcPoint(p: Record<string, number | TensorLike>) {
  const values = entries(Object.entries(p).flatMap(([k, v]): [string, number][] => (typeof v === "number" ? [[k, v]] : [])));
  const tensors = entries(
    Object.entries(p).flatMap(([k, v]): [string, { shape: number[]; values: number[] }][] =>
      typeof v === "number" ? [] : [[k, { shape: v.shape, values: v.data }]],
    ),
  );
  return { values, tensors };
}

function grpcRequest(r: Req) {
  const batch =
    r.form === "point"
      ? { point: grpcPoint(r.point) }
      : r.form === "points"
        ? { points: [grpcPoint(r.point)] }
        : {
            columns: entries(
              Object.entries(r.point).map(([k, v]) => [
                k,
                typeof v === "number" ? { shape: [1], values: [v] } : { shape: [1, ...v.shape], values: v.data },
              ]),
            ),
          };
  return {
    function: grpcFunction(r.fn),
    mode: { reverse: Mode.REVERSE, forward: Mode.FORWARD, jacobian: Mode.JACOBIAN, hessian: Mode.HESSIAN }[r.mode],
    ...batch,
    wrt: r.wrt ?? [],
    ...(r.tangent ? { tangent: { values: r.tangent } } : {}),
    ...(r.cotangent ? { cotangent: { values: r.cotangent } } : {}),
    ...(r.initialize ? { initialize: r.initialize } : {}),
  };
}

/** A number for a scalar, else the elements; columns lose their point axis first. */
function restValue(v: unknown, columns: boolean): Value {
  if (typeof v === "number") return v;
  const t = v as TensorLike;
  const shape = columns ? t.shape.slice(1) : t.shape;
  return shape.length === 0 ? t.data[0] : t.data;
}

function grpcValue(t: Tensor, columns: boolean): Value {
  const shape = columns ? t.shape.slice(1) : t.shape;
  return shape.length === 0 ? elements(t)[0] : elements(t);
}

const SECTIONS = ["gradient", "jvp", "vjp", "jacobian", "hessian"] as const;
const NESTED = new Set(["jacobian", "hessian"]);

function mapNamed<T>(m: Record<string, T>, f: (v: T) => Value): Named {
  return entries(Object.entries(m).map(([k, v]) => [k, f(v)]));
}

async function viaRest(s: TestServer, r: Req): Promise<Answer> {
  const res = await s.post("/v1/differentiate", restBody(r));
  if (res.status !== 200) return { status: res.status, field: res.body.field as string | undefined, detail: String(res.body.detail) };
  const columns = r.form === "columns";
  const row = (r.form === "point" ? res.body : r.form === "points" ? (res.body.results as unknown[])[0] : res.body.columns) as Record<
    string,
    unknown
  >;
  const value = (v: unknown) => restValue(v, columns);
  const outputs = row.outputs ? mapNamed(row.outputs as Record<string, unknown>, value) : { "": value(row.value) };
  const sections: Record<string, Named | Record<string, Named>> = {};
  for (const s of SECTIONS) {
    const v = row[s] as Record<string, unknown> | undefined;
    if (v === undefined) continue;
    sections[s] = NESTED.has(s)
      ? entries(Object.entries(v).map(([k, inner]) => [k, mapNamed(inner as Record<string, unknown>, value)]))
      : mapNamed(v, value);
  }
  return { status: 200, outputs, sections };
}

async function viaGrpc(s: TestServer, r: Req): Promise<Answer> {
  let res: DifferentiateResponse;
  try {
    res = await s.differentiate(grpcRequest(r) as never);
  } catch (e) {
    const err = e as grpc.ServiceError;
    const status = err.code === grpc.status.INVALID_ARGUMENT ? 400 : 500 + (err.code ?? 0);
    return { status, field: err.metadata?.get("adjoint-field")[0] as string | undefined, detail: err.details };
  }
  const columns = r.form === "columns";
  const row = (r.form === "point" ? res.result : r.form === "points" ? res.results[0] : res.columns) as Result;
  const value = (t: Tensor) => grpcValue(t, columns);
  const sections: Record<string, Named | Record<string, Named>> = {};
  for (const s of SECTIONS) {
    const v = row[s];
    if (Object.keys(v).length === 0) continue;
    sections[s] = NESTED.has(s)
      ? entries(Object.entries(v as Record<string, { tensors: Record<string, Tensor> }>).map(([k, m]) => [k, mapNamed(m.tensors, value)]))
      : mapNamed(v as Record<string, Tensor>, value);
  }
  return { status: 200, outputs: mapNamed(row.outputs, value), sections };
}

const TRANSPORTS = [
  ["REST", viaRest],
  ["gRPC", viaGrpc],
] as const;

/** Where a name can sit in a function's definition, with the function's input and output names. */
interface Definition {
  readonly where: string;
  readonly fn: Fn;
  readonly inputs: [string, string];
  readonly output: string;
  /** Where the refusal of a reserved name points. */
  readonly field: string;
  /** The name is a JSON key of the REST body (which fastify's parser refuses for __proto__). */
  readonly key?: boolean;
}

const product = (a: string, b: string) => [
  { id: "s", op: "mul", args: [a, a] },
  { id: "g", op: "mul", args: ["s", b] },
];

function definitions(n: string): Definition[] {
  return [
    { where: "an expression's identifier", fn: { expression: `${n}^2*b` }, inputs: [n, "b"], output: "f", field: "function.expression" },
    {
      where: "a declared input",
      fn: { expression: `${n}^2*b`, inputs: [n, "b"] },
      inputs: [n, "b"],
      output: "f",
      field: "function.inputs[0].name",
    },
    {
      where: "an expressions output",
      fn: { expressions: entries([[n, "a^2*b"]]) },
      inputs: ["a", "b"],
      output: n,
      field: `function.expressions.${n}`,
      key: true,
    },
    {
      where: "a graph input",
      fn: { graph: { inputs: [n, "b"], nodes: product(n, "b"), outputs: [{ name: "f", node: "g" }] } },
      inputs: [n, "b"],
      output: "f",
      field: "function.graph.inputs[0].name",
    },
    {
      where: "a graph output",
      fn: { graph: { inputs: ["a", "b"], nodes: product("a", "b"), outputs: [{ name: n, node: "g" }] } },
      inputs: ["a", "b"],
      output: n,
      field: "function.graph.outputs[0].name",
    },
    {
      where: "a graph node id",
      fn: {
        graph: {
          inputs: ["a", "b"],
          nodes: [
            { id: n, op: "mul", args: ["a", "a"] },
            { id: "g", op: "mul", args: [n, "b"] },
          ],
          outputs: [{ name: "f", node: "g" }],
        },
      },
      inputs: ["a", "b"],
      output: "f",
      field: "function.graph.nodes[0].id",
    },
  ];
}

const PLAIN: Fn = { expression: "a^2*b" };
const at = (a: string, b: string) =>
  entries<number>([
    [a, 3],
    [b, 2],
  ]);

/**
 * A refusal: INVALID_ARGUMENT naming the field, or, where the name is a key of a REST body, possibly
 * the JSON parser's refusal (always for __proto__; for constructor only when its value is an object).
 */
function expectRefused(answer: Answer, name: string, field: string, restKey: boolean) {
  expect(answer.status, JSON.stringify(answer)).toBe(400);
  if (answer.status !== 400 || !("detail" in answer)) return;
  if (restKey && (name === "__proto__" || (name === "constructor" && answer.field === undefined))) {
    expect(answer.detail).toMatch(/not acceptable JSON/);
    return;
  }
  expect(answer.field).toBe(field);
}

function expectAnswer(answer: Answer, mode: Req["mode"], [a, b]: [string, string], output: string, transport: string) {
  expect(answer.status, JSON.stringify(answer)).toBe(200);
  if (answer.status !== 200 || !("outputs" in answer)) return;
  // REST answers a single output as `value`, without its name; gRPC keys it by name.
  expect(answer.outputs).toEqual(entries([[transport === "REST" ? "" : output, 18]]));
  const gradient = entries<Value>([
    [a, 12],
    [b, 9],
  ]);
  if (mode === "reverse") expect(answer.sections).toEqual({ gradient });
  if (mode === "jacobian") expect(answer.sections).toEqual({ jacobian: entries([[output, gradient]]) });
  if (mode === "hessian") {
    const row = (x: number, y: number) =>
      entries<Value>([
        [a, x],
        [b, y],
      ]);
    expect(answer.sections).toEqual({
      gradient,
      hessian: entries([
        [a, row(4, 6)],
        [b, row(6, 0)],
      ]),
    });
  }
}

const MODES: { mode: Req["mode"]; form: Req["form"] }[] = [
  { mode: "reverse", form: "point" },
  { mode: "jacobian", form: "points" },
  { mode: "jacobian", form: "columns" },
  { mode: "hessian", form: "point" },
];

describe.each([
  ["inline", {}],
  ["on the pool", { inlineBudgetUs: 0 }],
] as const)("client names as data, evaluated %s", (_where, config) => {
  let s: TestServer;
  let prototypeKeys: string[];
  beforeAll(async () => {
    prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    s = await startTestServer(config);
  });
  afterAll(async () => {
    await s?.close();
  });

  for (const [transport, send] of TRANSPORTS) {
    describe(`over ${transport}`, () => {
      it.each(NAMES)("%s in every place a function names something, in every mode", async (name) => {
        // Every request is sent before any is checked, so that one refused too late has its chance to do harm.
        const sent: { d: Definition; mode: Req["mode"]; answer: Answer }[] = [];
        for (const d of definitions(name)) {
          for (const { mode, form } of MODES) {
            // A reserved input name stays out of the point, so that the definition itself is what gets refused.
            const point = entries(Object.entries(at(...d.inputs)).filter(([k]) => !isReserved(k)));
            sent.push({ d, mode, answer: await send(s, { fn: d.fn, mode, form, point }) });
          }
        }
        for (const { d, mode, answer } of sent) {
          if (isReserved(name)) expectRefused(answer, name, d.field, transport === "REST" && d.key === true);
          else expectAnswer(answer, mode, d.inputs, d.output, transport);
        }
      });

      it.each(NAMES)("%s as a model's layer name", async (name) => {
        // One dense unit: loss = (x·w + b − y)², r = 1·0.5 + 2·(−1) + 0.25 − 0.5 = −1.75, ∇w = 2r·x, ∇b = 2r.
        const model: ModelDefinition = { input: [2], layers: [{ type: "dense", units: 1, name }], loss: "mse" };
        const point = entries<number | TensorLike>([
          ["x", { shape: [1, 2], data: [1, 2] }],
          ["y", { shape: [1, 1], data: [0.5] }],
          [`${name}.weight`, { shape: [2, 1], data: [0.5, -1] }],
          [`${name}.bias`, { shape: [1], data: [0.25] }],
        ]);
        const answer = await send(s, { fn: { model }, mode: "reverse", form: "point", point });
        if (isReserved(name)) {
          expectRefused(answer, name, "function.model.layers[0].name", false);
          return;
        }
        expect(answer.status, JSON.stringify(answer)).toBe(200);
        if (!("outputs" in answer)) return;
        expect(Object.values(answer.outputs)).toEqual([1.75 ** 2]);
        expect(answer.sections).toEqual({
          gradient: entries([
            [`${name}.weight`, [-3.5, -7]],
            [`${name}.bias`, [-3.5]],
          ]),
        });
        // Drawn parameters are keyed by the same names; giving one of them as well is refused.
        const drawn = await send(s, {
          fn: { model },
          mode: "reverse",
          form: "point",
          point: { x: point.x, y: point.y },
          initialize: { seed: 7 },
        });
        expect(drawn.status, JSON.stringify(drawn)).toBe(200);
        if ("sections" in drawn) expect(Object.keys(drawn.sections.gradient)).toEqual([`${name}.weight`, `${name}.bias`]);
      });

      it.each(NAMES)("%s as an attribute key", async (name) => {
        const fn: Fn = {
          graph: {
            inputs: ["a", "b"],
            nodes: [...product("a", "b"), { id: "t", op: "sum", args: ["g"], attrs: entries([[name, 0]]) }],
            outputs: [{ name: "f", node: "t" }],
          },
        };
        const answer = await send(s, { fn, mode: "reverse", form: "point", point: at("a", "b") });
        if (isReserved(name)) expectRefused(answer, name, `function.graph.nodes[2].attrs.${name}`, transport === "REST");
        else {
          // Not reserved, but no op takes such an attribute.
          expect(answer.status).toBe(400);
          if ("detail" in answer) expect(answer.detail).toContain(`unknown attribute ${name}`);
        }
      });

      it.each(NAMES)("%s as a key of point, points, columns and as a wrt entry: refused, naming it", async (name) => {
        for (const { mode, form } of MODES) {
          const point = entries<number>([
            ["a", 3],
            ["b", 2],
            [name, 1],
          ]);
          const where = form === "point" ? "point" : form === "points" ? "points[0]" : "columns";
          expectRefused(await send(s, { fn: PLAIN, mode, form, point }), name, `${where}.${name}`, transport === "REST");
          const wrong = await send(s, { fn: PLAIN, mode, form, point: at("a", "b"), wrt: [name] });
          expect(wrong.status).toBe(400);
          if ("field" in wrong) expect(wrong.field).toBe("wrt");
        }
      });

      it.each(NAMES)(
        "%s as a tangent or cotangent key: refused where it names nothing, answered where it names something",
        async (name) => {
          const tangent = entries([
            ["a", 1],
            ["b", 0],
            [name, 1],
          ]);
          expectRefused(
            await send(s, { fn: PLAIN, mode: "forward", form: "point", point: at("a", "b"), tangent }),
            name,
            `tangent.${name}`,
            transport === "REST",
          );
          const cotangent = entries([
            ["f", 1],
            [name, 1],
          ]);
          expectRefused(
            await send(s, { fn: PLAIN, mode: "reverse", form: "point", point: at("a", "b"), cotangent }),
            name,
            `cotangent.${name}`,
            transport === "REST",
          );
          if (isReserved(name)) return;
          // f = name²·b: the tangent along `name` gives ∂f/∂name = 12.
          const jvp = await send(s, {
            fn: { expression: `${name}^2*b` },
            mode: "forward",
            form: "point",
            point: at(name, "b"),
            tangent: entries([
              [name, 1],
              ["b", 0],
            ]),
          });
          expect(jvp.status, JSON.stringify(jvp)).toBe(200);
          if ("sections" in jvp) expect(jvp.sections).toEqual({ jvp: { f: 12 } });
          // The output named `name` weighted by 2: vᵀJ = 2·(12, 9).
          const vjp = await send(s, {
            fn: { expressions: entries([[name, "a^2*b"]]) },
            mode: "reverse",
            form: "point",
            point: at("a", "b"),
            cotangent: entries([[name, 2]]),
          });
          expect(vjp.status, JSON.stringify(vjp)).toBe(200);
          if ("sections" in vjp) expect(vjp.sections).toEqual({ vjp: { a: 24, b: 18 } });
          // wrt naming the input `name` alone.
          const one = await send(s, {
            fn: { expression: `${name}^2*b` },
            mode: "hessian",
            form: "point",
            point: at(name, "b"),
            wrt: [name],
          });
          expect(one.status, JSON.stringify(one)).toBe(200);
          if ("sections" in one)
            expect(one.sections).toEqual({ gradient: entries([[name, 12]]), hessian: entries([[name, entries([[name, 4]])]]) });
        },
      );

      it("an input named toString that the point leaves out is missing, not inherited", async () => {
        const answer = await send(s, { fn: { expression: "toString*b" }, mode: "reverse", form: "point", point: { b: 2 } });
        expect(answer).toMatchObject({ status: 400, field: "point.toString" });
        const batch = await send(s, { fn: { expression: "toString*b" }, mode: "jacobian", form: "columns", point: { b: 2 } });
        expect(batch).toMatchObject({ status: 400, field: "columns.toString" });
        const doubled = await send(s, { fn: { expression: "toString*2" }, mode: "reverse", form: "point", point: { toString: 3 } });
        expect(doubled).toMatchObject({ status: 200, sections: { gradient: { toString: 2 } } });
        if ("outputs" in doubled) expect(Object.values(doubled.outputs)).toEqual([6]);
      });
    });
  }

  it("leaves the process unharmed: Object.prototype unchanged, the worked example exact over both transports", async () => {
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    const http = await s.post("/v1/differentiate", WORKED);
    expect(http.status).toBe(200);
    expect(http.body.value).toBeCloseTo(WORKED_VALUES.f, 15);
    expect(http.body.gradient).toEqual({ x1: expect.closeTo(WORKED_VALUES.x1, 15), x2: expect.closeTo(WORKED_VALUES.x2, 15) });
    const g = await s.differentiate({
      function: { source: { case: "expression", value: WORKED.function.expression } },
      point: { values: WORKED.point },
      mode: Mode.REVERSE,
    });
    expect(num(g.result?.outputs.f)).toBeCloseTo(WORKED_VALUES.f, 15);
    expect(num(g.result?.gradient.x1)).toBeCloseTo(WORKED_VALUES.x1, 15);
    expect(num(g.result?.gradient.x2)).toBeCloseTo(WORKED_VALUES.x2, 15);
    const metrics = await s.get("/metrics");
    expect(metrics.status).toBe(200);
  });
});
