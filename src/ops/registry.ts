import { OpRuleError } from "../errors.js";
import * as arith from "./elementwise/arith.js";
import * as explog from "./elementwise/explog.js";
import * as hyperbolic from "./elementwise/hyperbolic.js";
import * as piecewise from "./elementwise/piecewise.js";
import * as special from "./elementwise/special.js";
import * as trig from "./elementwise/trig.js";
import * as conv from "./tensor/conv.js";
import * as indexing from "./tensor/indexing.js";
import * as matmul from "./tensor/matmul.js";
import * as nn from "./tensor/nn.js";
import * as pool from "./tensor/pool.js";
import * as reduce from "./tensor/reduce.js";
import * as shapeOps from "./tensor/shape-ops.js";
import * as slicing from "./tensor/slicing.js";
import type { OpDef } from "./types.js";

const families: readonly Record<string, OpDef>[] = [
  arith,
  explog,
  trig,
  hyperbolic,
  piecewise,
  special,
  shapeOps,
  slicing,
  reduce,
  matmul,
  indexing,
  nn,
  conv,
  pool,
];

const byName = new Map<string, OpDef>();
const canonical: OpDef[] = [];

/** Adds an op to the table. Tests use it for test-only ops; everything else registers at load time. */
export function registerOp(def: OpDef): void {
  for (const name of [def.name, ...(def.aliases ?? [])]) {
    if (byName.has(name)) throw new OpRuleError(`op name ${name} is registered twice`);
    byName.set(name, def);
  }
  canonical.push(def);
}

for (const family of families) for (const def of Object.values(family)) registerOp(def);

/** Finds an op by name or alias. */
export function findOp(name: string): OpDef | undefined {
  return byName.get(name);
}

/** Every op, each once, in registration order. */
export function allOps(): readonly OpDef[] {
  return canonical;
}

/** Names close to an unknown one, for "did you mean" hints. */
export function suggestOps(name: string): string[] {
  const lower = name.toLowerCase();
  return [...byName.keys()].filter((n) => n.startsWith(lower.slice(0, 3)) || lower.startsWith(n)).slice(0, 5);
}
