import { invalid } from "../errors.js";
import { CompiledGraph } from "./compiled-graph.js";
import { type Evaluation, MODE_NAMES, type Mode, type ModeOptions, modeOf } from "./modes/index.js";
import type { NamedValues } from "./values.js";

export type { Prepared } from "./compiled-graph.js";
export type { Evaluation, Mode } from "./modes/index.js";
export { MODE_NAMES } from "./modes/index.js";
export type { InputData } from "./run.js";

export interface EvaluateRequest extends ModeOptions {
  readonly mode: Mode;
}

/**
 * A function ready to evaluate: its graph, its content hash, and the programs compiled for it so far
 * (one per mode, wrt set and precision). Compiling is the expensive step; a caller keeps one of these
 * per function and evaluates it at many points, in any mode of engine/modes/.
 */
export class CompiledFunction extends CompiledGraph {
  evaluate(point: NamedValues, request: EvaluateRequest): Evaluation {
    const inputs = this.decode(point, this.graph.inputs, "point", "input", request.allowNonFinite ?? false);
    const mode = modeOf(request.mode);
    if (mode === undefined) throw invalid(`unknown mode ${String(request.mode)}; use one of ${MODE_NAMES.join(", ")}`, { field: "mode" });
    return mode.evaluate(this, inputs, request);
  }
}
