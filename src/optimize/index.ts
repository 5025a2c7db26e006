/** Server-side minimisation: the numerical core, over plain Float64Array callbacks. */
export { adam } from "./adam.js";
export { lbfgsb } from "./lbfgsb.js";
export { newtonCg } from "./newton-cg.js";
export type { HessianVectorProduct, MinimizeOptions, MinimizeResult, MinimizeStatus, Objective, Progress } from "./types.js";
export { warmOptimisers } from "./warm.js";
