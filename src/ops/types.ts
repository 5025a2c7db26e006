import { extentOf } from "../tensor/shape.js";

/**
 * How an op is described. One `OpDef` holds everything about an op: its evaluation, its derivative
 * rules (as graph builders, so derivatives are graphs and can be differentiated again), its shape
 * rule, and what the tests need to sample it. The manifest, the expression parser, the compiler and
 * the tests all read the same table, so adding an op means adding one definition.
 */

export type Shape = readonly number[];

/** Element type of a node. Floats take the program's precision (float64 by default, float32 on request). */
export type DType = "float" | "int";

export type Attrs = Readonly<Record<string, unknown>>;

/**
 * What a derivative rule or a composite expansion may do: add nodes to the graph under construction.
 * Implemented by the IR's builder; `ops/` never imports `ir/`. Node handles are plain integers.
 */
export interface RuleBuilder {
  op(name: string, args: readonly number[], attrs?: Attrs): number;
  constant(value: number): number;
  shape(node: number): Shape;
  dtype(node: number): DType;
  add(a: number, b: number): number;
  sub(a: number, b: number): number;
  mul(a: number, b: number): number;
  div(a: number, b: number): number;
  neg(a: number): number;
}

/**
 * What a simplification rule may ask beyond building: the node that produced an operand (its op and
 * operands), so that a rule can see through it (neg(neg x) = x).
 */
export interface SimplifyBuilder extends RuleBuilder {
  node(id: number): { readonly op: string; readonly args: readonly number[] };
}

/** Typed arrays tensors live in: floats at the program's precision, int32 for indices. */
export type TensorData = Float64Array | Float32Array | Int32Array;

/** What a tensor kernel is built for: fixed when the program is compiled. */
export interface KernelSpec<A extends Attrs | undefined = Attrs | undefined> {
  readonly argShapes: readonly Shape[];
  readonly shape: Shape;
  readonly attrs: A;
  readonly float32: boolean;
}

/** Runs the op on contiguous row-major operands into `out` (preallocated, exactly the output's size). */
export type TensorKernel = (args: readonly TensorData[], out: TensorData) => void;

/**
 * Where a view op's elements are: a strided window on its operand's buffer, optionally bounded per
 * axis, reading `fill` outside the bounds (zero padding read in place, never built).
 */
export interface ViewMapping {
  offset: number;
  strides: number[];
  bounds?: [number, number][];
  fill?: number;
}

/**
 * An op that only re-indexes its operand (reshape, broadcast, slice, transpose, padding): the
 * compiler reads through it without a copy. Maps the operand's strides and offset to the result's,
 * or returns undefined when the result cannot be expressed as a strided view (it is then copied).
 */
export type ViewRule<A extends Attrs | undefined = Attrs | undefined> = (
  argShape: Shape,
  attrs: A,
  view: { readonly offset: number; readonly strides: readonly number[] },
) => ViewMapping | undefined;

/**
 * Which operand elements one output element reads: element r reads operand elements
 * indices[indptr[row] .. indptr[row + 1]), row = rowOf[r] (rows shared by many elements, such as a
 * softmax's fibre, are stored once) or r without rowOf. Without indptr each row holds exactly one
 * entry, −1 standing for none (padding).
 */
export interface OperandMap {
  readonly rowOf?: Int32Array;
  readonly indptr?: Int32Array;
  readonly indices: Int32Array;
}

/**
 * An op's local sparsity, per operand: its map; "same" (element r reads the operand's element r);
 * "all" (every element of the operand); or null (no dependence: indices, comparisons).
 */
export type LocalSparsity = readonly (OperandMap | "same" | "all" | null)[];

/** What a sparsity rule sees: shapes, attributes, and the values of constant integer operands (indices). */
export interface SparsitySpec<A extends Attrs | undefined = Attrs | undefined> {
  readonly argShapes: readonly Shape[];
  readonly argTypes: readonly DType[];
  readonly shape: Shape;
  readonly attrs: A;
  readonly constants: readonly (Float64Array | undefined)[];
  /** The op itself, for rules that run its kernel (movedSparsity). */
  readonly op: Pick<OpDef<A>, "kernel" | "linearPart">;
}

export type SparsityRule<A extends Attrs | undefined = Attrs | undefined> = (spec: SparsitySpec<A>) => LocalSparsity;

/** `args[i]` is null where no derivative flows through operand i (comparisons, integer indices). */
export type MaybeNode = number | null;

/**
 * `A` is the op's attributes as its `normalizeAttrs` returns them (undefined for an op without
 * attributes): the builder normalises every node's attributes before any other rule sees them, so
 * the rules can read them typed. The table holds ops with `A` erased (see defineOp).
 */
export interface OpDef<A extends Attrs | undefined = Attrs | undefined> {
  readonly name: string;
  /** Exact operand count, or a range for variadic ops (concat, stack). */
  readonly arity: number | { readonly min: number; readonly max?: number };
  readonly summary: string;
  /**
   * The operands in order, with their roles, as the manifest shows them (clients cannot otherwise
   * learn scatter_add's order but from an error). Defaults: elementwise ops "a" or "a, b" (broadcast),
   * other one-operand ops "x".
   */
  readonly operands?: string;
  /**
   * elementwise: scalar kernel `js`, broadcasting shape rule, derivatives by `partials`.
   * composite: expands into other ops when built, so it needs no rules of its own.
   * structural: tensor op with its own shape rule, kernel and vjp, and a jvp unless it is `linear`.
   */
  readonly kind: "elementwise" | "composite" | "structural";
  readonly aliases?: readonly string[];
  /** Other ops this name stands for when called with another operand count: max(x) is the reduction amax. */
  readonly byArity?: Readonly<Record<number, string>>;
  /** Operand order does not matter (a ∘ b = b ∘ a exactly), so a + b and b + a are one node and one hash. */
  readonly commutative?: boolean;
  /** Names the parser accepts as keyword arguments, in positional order after the operands. */
  readonly attrNames?: readonly string[];

  /** Validates and canonicalises attributes against the operand shapes; throws OpRuleError. */
  normalizeAttrs?(attrs: Attrs | undefined, argShapes: readonly Shape[], argTypes: readonly DType[]): A;
  /** Output shape; throws OpRuleError naming the operands' shapes. Elementwise ops broadcast by default. */
  shape?(argShapes: readonly Shape[], attrs: A): Shape;
  /** Output element type; float unless said otherwise. */
  dtype?(argTypes: readonly DType[], attrs: A): DType;

  /**
   * Elementwise kernel as a JavaScript expression over operand expressions, which are locals or
   * literals that the compiler formatted itself. The interpreter, the code generator and the fused
   * tensor loops are all generated from this one template. Helpers are reachable as `H.name`.
   */
  js?(x: readonly string[]): string;

  /**
   * Elementwise derivative: ∂out/∂args[i] as nodes (null where not needed or identically zero).
   * Both modes derive from it: tangent = Σ partialᵢ·ẋᵢ, adjointᵢ = unbroadcast(ū·partialᵢ).
   */
  partials?(b: RuleBuilder, args: readonly number[], out: number, needs: readonly boolean[]): MaybeNode[];
  /**
   * Forward rule, for ops where partials do not fit (structural ops) or a better form exists. Linear
   * and bilinear ops say so with `linear` instead, and defineOp derives it.
   */
  jvp?(b: RuleBuilder, args: readonly number[], out: number, tangents: readonly MaybeNode[], attrs: A): MaybeNode;
  /**
   * The JVP is the op itself, as with JAX's deflinear and defbilinear, so only the transpose (vjp) is
   * written by hand:
   * - "linear" in its differentiable operands (the others, such as indices, held fixed): the tangent
   *   is the op applied to the operands' tangents, zeros standing in for operands without one;
   * - "bilinear" in its two operands: the tangent is op(ȧ, b) + op(a, ḃ).
   */
  readonly linear?: "linear" | "bilinear";
  /**
   * For an op that is affine rather than linear in its operands: the attributes of its linear part,
   * which the derived tangent is built with (pad's fill value becomes 0).
   */
  linearPart?(attrs: A): A;
  /** Reverse rule: the cotangent of each operand (null where none flows or not needed). */
  vjp?(b: RuleBuilder, args: readonly number[], out: number, cotangent: number, needs: readonly boolean[], attrs: A): MaybeNode[];

  /** Structural ops: the kernel that computes the op on tensors (scratch space allocated once here). */
  kernel?(spec: KernelSpec<A>): TensorKernel;
  /** View ops: how the op re-indexes its operand (see ViewRule). */
  readonly view?: ViewRule<A>;
  /** For an op that is a view under some attributes only (pad without interior spacing). */
  viewWhen?(attrs: A): boolean;
  /**
   * Sparsity detection: which operand elements each output element depends on, the same at every
   * point (both branches where control depends on values). Elementwise ops get it from their
   * definer and view ops from their view (defineOp); without one, every output element is taken
   * to depend on every element of every float operand.
   */
  readonly sparsity?: SparsityRule<A>;
  /**
   * Reductions: the identity and the combining template; the compiler fuses the reduction with the
   * elementwise ops that feed it into one loop.
   */
  readonly reduce?: { readonly identity: number; js(acc: string, x: string): string };
  /** Orders of derivative the op's rules support (default: any, since rules are built from ops). */
  readonly maxOrder?: number;

  /**
   * Exact simplifications: a node (existing or built from others) whose value equals the op's on
   * `args` for every input, or undefined. `consts` holds each operand's value where it is a scalar
   * constant; `shape` is the result's shape, which a replacement must keep (an operand that would
   * broadcast cannot stand in for the result). Runs after constant folding, which is generic.
   */
  simplify?(b: SimplifyBuilder, args: readonly number[], consts: readonly (number | undefined)[], shape: Shape): number | undefined;
  /**
   * Units of work in one evaluation, for the scheduler's inline-or-pool estimate (default: the
   * output's extent). Ops whose work is not one unit per output element say so: a matrix product
   * or a convolution counts its multiply-adds.
   */
  cost?(argShapes: readonly Shape[], shape: Shape, attrs: A): number;

  /** Composite ops: build the op from others. */
  expand?(b: RuleBuilder, args: readonly number[], attrs: A): number;

  /** Which operands carry derivatives at all (default: every float operand). */
  readonly differentiable?: readonly boolean[];

  // Documentation and test metadata.
  /**
   * Tensor shapes the tests run the op on (finite differences on every element, forward/reverse
   * agreement, float32 against float64): broadcasting, every reduction axis, transposes, batches.
   */
  readonly tensorCases?: readonly TensorCase[];
  /** Per-operand sampling interval inside the op's domain, for finite-difference tests. */
  readonly domain?: readonly (readonly [number, number])[];
  /** Exact values the forward kernel must reproduce, from closed forms. */
  readonly examples?: readonly { readonly args: readonly number[]; readonly value: number }[];
  /** The one-sided value chosen at non-differentiable points, and derivative examples that pin it. */
  readonly kinks?: {
    readonly doc: string;
    readonly cases?: readonly { readonly args: readonly number[]; readonly partials: readonly number[] }[];
  };
  /** What the second derivative returns where the first is piecewise. */
  readonly secondOrder?: string;
}

/** A tensor test case: operands by shape (sampled in `range`, default [−2, 2], or fixed integers). */
export interface TensorCase {
  readonly name: string;
  readonly args: readonly { readonly shape: Shape; readonly range?: readonly [number, number]; readonly ints?: readonly number[] }[];
  readonly attrs?: Attrs;
}

export function arityRange(def: OpDef): { min: number; max: number } {
  if (typeof def.arity === "number") return { min: def.arity, max: def.arity };
  return { min: def.arity.min, max: def.arity.max ?? Number.POSITIVE_INFINITY };
}

/** An op's units of work per evaluation (see OpDef.cost). */
export function costOf(def: OpDef, argShapes: readonly Shape[], shape: Shape, attrs: Attrs | undefined): number {
  return def.cost ? def.cost(argShapes, shape, attrs) : extentOf(shape);
}
