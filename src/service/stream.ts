import { invalid } from "../errors.js";
import type { FunctionEntry } from "./functions.js";
import type { AnswerMemory, CallContext, DifferentiateInput, DifferentiateOutput } from "./types.js";

/** What a stream needs of the service (an interface, so this file does not import service.ts back). */
export interface StreamHost {
  /** The function a message names (a long expression parsed on the pool, hence perhaps a promise). */
  resolveFunction(input: DifferentiateInput, ctx: CallContext): FunctionEntry | Promise<FunctionEntry>;
  /** As AdjointService.evaluate, with the batch memory the answer's tensors lie in lent to `finish` (AnswerMemory). */
  evaluate<T>(
    entry: FunctionEntry,
    input: DifferentiateInput,
    ctx: CallContext,
    finish: (out: DifferentiateOutput, memory: AnswerMemory) => T | Promise<T>,
  ): T | Promise<T>;
}

/**
 * DifferentiateStream: the first message names the function and the settings (mode, wrt, tangent,
 * cotangent, trace, allowNonFinite, precision); later messages may carry only points and reuse both. A
 * message that names a function starts over with its own settings.
 */
export class StreamSession {
  private entry: FunctionEntry | undefined;
  private settings: DifferentiateInput = {};

  constructor(private readonly service: StreamHost) {}

  /**
   * The message's answer as `encode` makes it, encoded within its slot as differentiateEncoded does,
   * with the memory its tensors lie in (none for a message without points).
   */
  async next<T>(input: DifferentiateInput, ctx: CallContext, encode: (out: DifferentiateOutput, memory?: AnswerMemory) => T): Promise<T> {
    if (input.function !== undefined) {
      this.entry = await this.service.resolveFunction(input, ctx);
      const { point: _p, points: _ps, columns: _c, function: _f, ...settings } = input;
      this.settings = settings;
    } else if (this.entry === undefined) {
      throw invalid("function: the first message of a stream must name the function", { field: "function" });
    }
    const entry = this.entry;
    if (input.point === undefined && input.points === undefined && input.columns === undefined) {
      return encode({ id: entry.hash, mode: this.settings.mode ?? "reverse", allowNonFinite: this.settings.allowNonFinite ?? false });
    }
    return this.service.evaluate(
      entry,
      { ...this.settings, point: input.point, points: input.points, columns: input.columns },
      ctx,
      encode,
    );
  }
}
