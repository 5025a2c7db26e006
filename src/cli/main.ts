import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CompiledFunction, type Mode } from "../engine/compiled-function.js";
import { AdjointError } from "../errors.js";
import { parseExpression } from "../ir/expression.js";
import type { Graph } from "../ir/graph.js";
import { readJsonGraph } from "../ir/json-graph.js";
import { toJson } from "../json.js";
import { record } from "../names.js";
import { allOps } from "../ops/registry.js";
import { traceTable } from "./trace-table.js";

const USAGE = `usage:
  adjoint grad  (--expr TEXT | --graph FILE.json) --at NAME=VALUE,... [--mode reverse|forward] [--wrt NAME,...] [--trace [--format table]]
  adjoint value (--expr TEXT | --graph FILE.json) --at NAME=VALUE,... [--trace [--format table]]
  adjoint hash  (--expr TEXT | --graph FILE.json)
  adjoint ops

Prints one JSON document (with --trace --format table: the trace as a table, one row per uᵢ). Errors go to stderr, with exit code 2 for bad input.`;

const OPTIONS = {
  expr: { type: "string" },
  graph: { type: "string" },
  at: { type: "string" },
  mode: { type: "string" },
  wrt: { type: "string" },
  trace: { type: "boolean" },
  format: { type: "string" },
  precision: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

class UsageError extends Error {}

function readFunction(expr: string | undefined, graphFile: string | undefined): Graph {
  if ((expr === undefined) === (graphFile === undefined)) throw new UsageError("give exactly one of --expr and --graph");
  if (expr !== undefined) return parseExpression(expr);
  let text: string;
  try {
    text = readFileSync(graphFile as string, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${graphFile}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${graphFile} is not valid JSON: ${(e as Error).message}`);
  }
  return readJsonGraph(json);
}

/** `x1=2,x2=0.5` → { x1: 2, x2: 0.5 }. */
function readPoint(text: string | undefined): Record<string, number> {
  if (text === undefined) throw new UsageError("--at is required, e.g. --at x1=2,x2=0.5");
  const point: Record<string, number> = record();
  for (const part of text.split(",")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$/.exec(part);
    const value = m ? Number(m[2]) : Number.NaN;
    if (!m || m[2].trim() === "" || Number.isNaN(value)) throw new UsageError(`--at: cannot read "${part}"; write NAME=NUMBER`);
    if (Object.hasOwn(point, m[1])) throw new UsageError(`--at: ${m[1]} is given twice`);
    point[m[1]] = value;
  }
  return point;
}

function run(argv: string[]): unknown {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  const command = positionals[0];
  if (values.help || command === undefined) throw new UsageError("");
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
  if (command === "ops") {
    return allOps().map((d) => ({ name: d.name, arity: d.arity, summary: d.summary }));
  }
  const graph = readFunction(values.expr, values.graph);
  const fn = new CompiledFunction(graph);
  if (command === "hash") return { id: fn.hash, inputs: fn.inputNames, outputs: fn.outputNames };
  if (command !== "grad" && command !== "value") throw new UsageError(`unknown command ${command}`);
  const mode = (command === "value" ? "value" : (values.mode ?? "reverse")) as Mode;
  if (mode !== "value" && mode !== "reverse" && mode !== "forward") throw new UsageError(`--mode must be reverse or forward, not ${mode}`);
  if (values.precision !== undefined && values.precision !== "float64" && values.precision !== "float32") {
    throw new UsageError("--precision must be float64 or float32");
  }
  if (values.format !== undefined && values.format !== "json" && values.format !== "table") {
    throw new UsageError("--format must be json or table");
  }
  if (values.format === "table" && !values.trace) throw new UsageError("--format table prints the trace: add --trace");
  const result = fn.evaluate(readPoint(values.at), {
    mode,
    wrt: values.wrt?.split(",").map((s) => s.trim()),
    trace: values.trace ?? false,
    precision: values.precision as "float64" | "float32" | undefined,
  });
  if (values.format === "table" && result.trace) return traceTable(result.trace);
  const outputs = Object.values(result.outputs);
  return {
    value: outputs.length === 1 ? outputs[0] : result.outputs,
    ...(result.gradient ? { gradient: result.gradient } : {}),
    ...(result.trace ? { trace: result.trace } : {}),
    ...(result.nonFinite ? { nonFinite: result.nonFinite } : {}),
  };
}

/** Runs the command line; returns the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  try {
    const out = run(argv);
    // A table comes back as its text; everything else is printed as JSON.
    process.stdout.write(typeof out === "string" ? out : `${toJson(out, 2)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(e.message ? `adjoint: ${e.message}\n\n${USAGE}\n` : `${USAGE}\n`);
      return 2;
    }
    if (e instanceof AdjointError) {
      process.stderr.write(`adjoint: ${e.message}\n`);
      return 2;
    }
    if (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`adjoint: ${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`adjoint: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}
