export { type Coloring, columnColoring, largestFirst, rowColoring, starColoring } from "./coloring.js";
export {
  type CsrMatrix,
  columnGather,
  decompressColumns,
  decompressRows,
  decompressStar,
  rowGather,
  seedMatrix,
  starGather,
} from "./decompress.js";
export { type HessianPattern, type HessianPatternOptions, hessianPattern } from "./hessian-pattern.js";
export {
  fallbackOps,
  type JacobianPattern,
  jacobianPattern,
  type PatternBlock,
  type PatternOptions,
  type SparsityPattern,
} from "./pattern.js";
export { patternEntries, transposePattern, unionPatterns } from "./pattern-ops.js";
