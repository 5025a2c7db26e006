import type { Program } from "../compile/program.js";

/** One input's data for a program: a number, or row-major elements. */
export type InputData = number | ArrayLike<number>;

/** Writes the inputs (in the graph's input order) and runs the program. */
export function run(program: Program, inputs: readonly InputData[]): void {
  for (let k = 0; k < inputs.length; k++) program.useInput(k, inputs[k]);
  program.run();
}
