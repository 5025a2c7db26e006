import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * The layers of src/ and workers/, top first, as README.md ("Inside") states them. A file may import
 * from its own layer and from any tier above its own; layers in one tier sit side by side and must
 * not import each other. A path ending in "/" is a folder, anything else one file.
 */
const TIERS: readonly Readonly<Record<string, readonly string[]>>[] = [
  // The vocabulary every layer shares: the error kinds, JSON and name helpers, a package's missing types.
  { shared: ["src/errors.ts", "src/json.ts", "src/names.ts", "src/types-stdlib.d.ts"] },
  { tensor: ["src/tensor/"] },
  { optimize: ["src/optimize/"] },
  { ops: ["src/ops/"] },
  { ir: ["src/ir/"] },
  { ad: ["src/ad/"] },
  { compile: ["src/compile/"] },
  { engine: ["src/engine/"] },
  { runtime: ["src/runtime/"] },
  // The pool loads the worker by file name, never by import, so the worker can sit below the pool.
  { workers: ["workers/"] },
  { service: ["src/service/"] },
  // cluster: the processes of a clustered service, beside the transports each of them serves.
  { http: ["src/http/"], grpc: ["src/grpc/"], cli: ["src/cli/"], cluster: ["src/cluster/"] },
  // adjoint/client: the service's client; it shares only the generated gRPC messages and definition.
  { client: ["src/client/"] },
  // The composition root: it builds the pool, the service and both servers.
  { main: ["src/main.ts"] },
];

/**
 * Imports known to go against the rules, each as "importer → imported". Each must still exist and
 * still break a rule: once one is fixed the test fails until it leaves this list, so the list cannot
 * outlive the problem it excuses.
 */
const KNOWN_EXCEPTIONS: readonly { readonly edge: string; readonly rule: "layer" | "cycle" }[] = [];

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Static imports, re-exports (`export … from`), side-effect imports and literal dynamic imports. */
const SPECIFIER =
  /^\s*(?:import|export)\b[^;(=]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

interface Edge {
  readonly from: string;
  readonly to: string;
}

const arrow = (e: Edge) => `${e.from} → ${e.to}`;

/** Every relative import of src/ and workers/, resolved to the repository path of its .ts source. */
function importGraph(): { files: string[]; edges: Edge[]; unresolved: string[] } {
  const files = [...sourceFiles("src"), ...sourceFiles("workers")];
  const edges: Edge[] = [];
  const unresolved: string[] = [];
  for (const from of files) {
    const text = readFileSync(join(ROOT, from), "utf8");
    for (const match of text.matchAll(SPECIFIER)) {
      const specifier = match[1] ?? match[2] ?? match[3];
      if (!specifier.startsWith(".")) continue;
      const target = posix.normalize(posix.join(posix.dirname(from), specifier));
      const to = [target.replace(/\.js$/, ".ts"), target.replace(/\.js$/, ".d.ts"), target].find((p) => existsSync(join(ROOT, p)));
      if (to === undefined) unresolved.push(`${from} → ${specifier}`);
      else edges.push({ from, to });
    }
  }
  return { files, edges, unresolved };
}

function layerOf(file: string): { name: string; tier: number } | undefined {
  for (const [tier, layers] of TIERS.entries()) {
    for (const [name, paths] of Object.entries(layers)) {
      if (paths.some((p) => (p.endsWith("/") ? file.startsWith(p) : file === p))) return { name, tier };
    }
  }
  return undefined;
}

function layerViolation(e: Edge): string | undefined {
  const from = layerOf(e.from);
  const to = layerOf(e.to);
  if (!from || !to) return `${arrow(e)}: ${from ? e.to : e.from} is in no layer`;
  if (from.name === to.name || to.tier < from.tier) return undefined;
  const where = to.tier === from.tier ? "beside it" : "below it";
  return `${arrow(e)}: ${from.name} imports ${to.name}, which sits ${where}`;
}

/** One cycle through each knot of the graph (strongly connected component of two or more files). */
function cycles(files: readonly string[], edges: readonly Edge[]): string[][] {
  const next = new Map(files.map((f) => [f, [] as string[]]));
  for (const e of edges) next.get(e.from)?.push(e.to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const knots: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) !== index.get(v)) return;
    const knot: string[] = [];
    let w: string;
    do {
      w = stack.pop() as string;
      onStack.delete(w);
      knot.push(w);
    } while (w !== v);
    if (knot.length > 1 || (next.get(v) ?? []).includes(v)) knots.push(knot);
  };
  for (const f of files) if (!index.has(f)) visit(f);
  // A shortest way round each knot, from its first file back to itself, for the failure message.
  return knots.map((knot) => {
    const members = new Set(knot);
    const start = [...knot].sort()[0];
    const came = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift() as string;
      for (const w of next.get(v) ?? []) {
        if (w === start) {
          const path = [start];
          for (let u = v; u !== start; u = came.get(u) as string) path.splice(1, 0, u);
          return [...path, start];
        }
        if (members.has(w) && !came.has(w)) {
          came.set(w, v);
          queue.push(w);
        }
      }
    }
    return [start, start];
  });
}

const cycleText = (cycle: readonly string[]) => cycle.join(" → ");

/** Whether `to` can be reached from `from` along the edges; an edge a → b lies on a cycle when b reaches a. */
function reaches(edges: readonly Edge[], from: string, to: string): boolean {
  const seen = new Set([from]);
  const queue = [from];
  while (queue.length > 0) {
    const v = queue.shift() as string;
    if (v === to) return true;
    for (const e of edges) {
      if (e.from === v && !seen.has(e.to)) {
        seen.add(e.to);
        queue.push(e.to);
      }
    }
  }
  return false;
}

describe("architecture", () => {
  const { files, edges, unresolved } = importGraph();
  const excused = new Set(KNOWN_EXCEPTIONS.map((k) => k.edge));

  it("reads a real import graph", () => {
    expect(unresolved, "imports whose file does not exist (or the parser misread them)").toEqual([]);
    expect(files.length).toBeGreaterThan(50);
    expect(edges.length).toBeGreaterThan(200);
  });

  it("places every file of src/ and workers/ in a layer", () => {
    expect(files.filter((f) => !layerOf(f))).toEqual([]);
  });

  it("imports only from the same layer or one above it", () => {
    const wrong = edges.filter((e) => !excused.has(arrow(e))).map(layerViolation);
    expect(wrong.filter((v) => v !== undefined)).toEqual([]);
  });

  it("has no import cycles between files", () => {
    const kept = edges.filter((e) => !excused.has(arrow(e)));
    expect(cycles(files, kept).map(cycleText)).toEqual([]);
  });

  it("lists only exceptions that still break a rule", () => {
    const stale = KNOWN_EXCEPTIONS.filter(({ edge, rule }) => {
      const e = edges.find((x) => arrow(x) === edge);
      if (!e) return true;
      return rule === "layer" ? layerViolation(e) === undefined : !reaches(edges, e.to, e.from);
    });
    expect(stale.map((k) => `${k.edge} no longer breaks the ${k.rule} rule: remove it from KNOWN_EXCEPTIONS`)).toEqual([]);
  });
});
