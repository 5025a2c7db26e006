import { AdjointError, invalid } from "../errors.js";
import { checkName, RESERVED_NAMES } from "../names.js";
import { findOp } from "../ops/registry.js";
import type { Attrs, DType, Shape } from "../ops/types.js";
import { BudgetExceeded, functionBudget } from "./budget.js";
import { GraphBuilder } from "./builder.js";
import { pointAt, type Token, tokenize } from "./expression-lexer.js";
import type { Graph } from "./graph.js";

/**
 * The expression language: ordinary math syntax read by a recursive-descent parser into the graph
 * IR. Nothing is ever evaluated as JavaScript.
 *
 *   comparison := sum (('<' | '<=' | '>' | '>=' | '==' | '!=') sum)?
 *   sum        := product (('+' | '-') product)*
 *   product    := unary (('*' | '/' | '@') unary)*
 *   unary      := ('-' | '+') unary | power          -x^2 is -(x^2)
 *   power      := postfix (('^' | '**') unary)?      right-associative: 2^3^2 = 2^9
 *   postfix    := primary ('[' index (',' index)* ']')*
 *   primary    := number | name | name '(' arguments ')' | '(' comparison ')'
 *   arguments  := comparison (',' comparison)* (',' name '=' literal)*
 */

export interface InputDeclaration {
  readonly name: string;
  readonly shape?: Shape;
  readonly dtype?: DType;
}

export interface ExpressionSource {
  /** One or more outputs; they share one graph, so common subexpressions are computed once. */
  readonly outputs: readonly { readonly name: string; readonly text: string }[];
  /** Declared inputs, in order. Without it, inputs are the free variables in order of appearance. */
  readonly inputs?: readonly InputDeclaration[];
  /**
   * Most nodes the graph may have (ADJOINT_MAX_NODES): counted while parsing, so that an oversized
   * expression is refused before it is built, not after.
   */
  readonly maxNodes?: number;
}

const CONSTANTS: Readonly<Record<string, number>> = { pi: Math.PI, e: Math.E };

/** Deepest nesting accepted: far beyond any formula, well within the parser's stack. */
const MAX_NESTING = 500;

class Parser {
  private tokens: Token[] = [];
  private pos = 0;
  private text = "";
  private output: string | undefined;
  private depth = 0;

  constructor(
    private readonly b: GraphBuilder,
    private readonly declared: ReadonlyMap<string, InputDeclaration> | undefined,
    private readonly maxNodes = Number.POSITIVE_INFINITY,
  ) {}

  parse(text: string, output: string | undefined): number {
    this.text = text;
    this.output = output;
    this.tokens = tokenize(text, output, this.maxNodes);
    this.pos = 0;
    if (this.peek().kind === "end") throw this.error(this.peek(), "empty expression");
    const node = this.comparison();
    const rest = this.peek();
    if (rest.kind !== "end") throw this.error(rest, `unexpected '${rest.text}'`);
    return node;
  }

  private peek(): Token {
    return this.tokens[this.pos];
  }

  private next(): Token {
    return this.tokens[this.pos++];
  }

  private accept(text: string): Token | undefined {
    const t = this.peek();
    if (t.kind === "op" && t.text === text) {
      this.pos++;
      return t;
    }
    return undefined;
  }

  private expect(text: string, context: string): Token {
    const t = this.accept(text);
    if (t) return t;
    const got = this.peek();
    throw this.error(got, `expected '${text}' ${context}, found ${got.kind === "end" ? "the end of the expression" : `'${got.text}'`}`);
  }

  private error(t: Token, message: string): AdjointError {
    return pointAt(this.text, t.at, message, this.output);
  }

  /** Builds an op, attributing shape and attribute errors to the operator's column. */
  private build(t: Token, op: string, args: number[], attrs?: Attrs): number {
    try {
      return this.b.op(op, args, attrs);
    } catch (e) {
      if (e instanceof AdjointError && !(e instanceof BudgetExceeded)) throw this.error(t, e.message.replace(/^op \w+: /, `${op}: `));
      throw e;
    }
  }

  private comparison(): number {
    const left = this.sum();
    const t = this.peek();
    const ops: Record<string, string> = { "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne" };
    if (t.kind === "op" && ops[t.text]) {
      this.pos++;
      const right = this.sum();
      const after = this.peek();
      if (after.kind === "op" && ops[after.text]) throw this.error(after, "comparisons do not chain; use parentheses");
      return this.build(t, ops[t.text], [left, right]);
    }
    return left;
  }

  private sum(): number {
    let left = this.product();
    for (;;) {
      const t = this.peek();
      if (t.kind === "op" && (t.text === "+" || t.text === "-")) {
        this.pos++;
        left = this.build(t, t.text === "+" ? "add" : "sub", [left, this.product()]);
      } else return left;
    }
  }

  private product(): number {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      const op = t.kind === "op" ? { "*": "mul", "/": "div", "@": "matmul" }[t.text] : undefined;
      if (!op) return left;
      this.pos++;
      left = this.build(t, op, [left, this.unary()]);
    }
  }

  /** Every level of nesting (parentheses, signs, exponents, arguments) passes here: it bounds the recursion. */
  private unary(): number {
    const t = this.peek();
    if (++this.depth > MAX_NESTING) throw this.error(t, `the expression nests deeper than ${MAX_NESTING} levels`);
    try {
      if (this.accept("-")) return this.build(t, "neg", [this.unary()]);
      if (this.accept("+")) return this.unary();
      return this.power();
    } finally {
      this.depth--;
    }
  }

  private power(): number {
    const base = this.postfix();
    const t = this.peek();
    if (this.accept("^") || this.accept("**")) return this.build(t, "pow", [base, this.unary()]);
    return base;
  }

  private postfix(): number {
    let node = this.primary();
    for (;;) {
      const t = this.peek();
      if (!this.accept("[")) return node;
      node = this.index(t, node);
    }
  }

  /** x[i], x[a:b], x[a:b:s], x[:, 2]: integer indices drop their axis, slices keep it. */
  private index(open: Token, node: number): number {
    const begins: (number | null)[] = [];
    const ends: (number | null)[] = [];
    const steps: number[] = [];
    const squeeze: number[] = [];
    do {
      const parts: (number | null)[] = [this.optionalInteger()];
      while (this.accept(":")) parts.push(this.optionalInteger());
      if (parts.length > 3) throw this.error(this.peek(), "a slice has at most begin:end:step");
      if (parts.length === 1) {
        if (parts[0] === null) throw this.error(this.peek(), "expected an index or a slice");
        const i = parts[0];
        begins.push(i);
        ends.push(i === -1 ? null : i + 1);
        steps.push(1);
        squeeze.push(begins.length - 1);
      } else {
        begins.push(parts[0]);
        ends.push(parts[1]);
        steps.push(parts[2] ?? 1);
      }
    } while (this.accept(","));
    this.expect("]", "to close the index");
    let out = this.build(open, "slice", [node], { begin: begins, end: ends, step: steps });
    if (squeeze.length) out = this.build(open, "squeeze", [out], { axes: squeeze });
    return out;
  }

  private optionalInteger(): number | null {
    const t = this.peek();
    const negative = t.kind === "op" && t.text === "-";
    const digits = this.tokens[this.pos + (negative ? 1 : 0)];
    if (digits.kind !== "number") return null;
    if (!/^\d+$/.test(digits.text)) throw this.error(digits, "indices must be integers");
    this.pos += negative ? 2 : 1;
    return negative ? -Number(digits.text) : Number(digits.text);
  }

  private primary(): number {
    const t = this.next();
    if (t.kind === "number") return this.b.constant(t.value as number);
    if (t.kind === "op" && t.text === "(") {
      const inner = this.comparison();
      this.expect(")", `to close the parenthesis opened at column ${t.at + 1}`);
      return inner;
    }
    if (t.kind === "name") {
      if (this.peek().kind === "op" && this.peek().text === "(") return this.call(t);
      if (Object.hasOwn(CONSTANTS, t.text) && !this.declared?.has(t.text)) return this.b.constant(CONSTANTS[t.text]);
      return this.variable(t);
    }
    if (t.kind === "end") throw this.error(t, "unexpected end of expression");
    throw this.error(t, `unexpected '${t.text}'`);
  }

  private variable(t: Token): number {
    if (RESERVED_NAMES.has(t.text)) throw this.error(t, `the name ${t.text} is reserved and cannot name an input; rename the variable`);
    if (findOp(t.text) && !this.declared?.has(t.text)) throw this.error(t, `${t.text} is a function; call it as ${t.text}(...)`);
    if (this.declared) {
      const decl = this.declared.get(t.text);
      if (!decl) throw this.error(t, `unknown variable ${t.text}; the declared inputs are ${[...this.declared.keys()].join(", ")}`);
      return this.b.input(decl.name, decl.shape ?? [], decl.dtype ?? "float");
    }
    return this.b.input(t.text);
  }

  private call(name: Token): number {
    const def = findOp(name.text);
    if (!def) throw this.error(name, `unknown function ${name.text}`);
    this.expect("(", "after the function name");
    const args: number[] = [];
    const attrs: Record<string, unknown> = {};
    if (!this.accept(")")) {
      do {
        const t = this.peek();
        const isKeyword = t.kind === "name" && this.tokens[this.pos + 1].kind === "op" && this.tokens[this.pos + 1].text === "=";
        if (isKeyword) {
          const allowed = [def, ...Object.values(def.byArity ?? {}).map((n) => findOp(n))].flatMap((d) => d?.attrNames ?? []);
          if (!allowed.includes(t.text)) {
            const known = allowed.length ? `; it takes ${allowed.join(", ")}` : "; it takes none";
            throw this.error(t, `${def.name} has no keyword argument ${t.text}${known}`);
          }
          this.pos += 2;
          attrs[t.text] = this.literal();
        } else {
          if (Object.keys(attrs).length) throw this.error(t, "positional arguments must come before keyword arguments");
          args.push(this.comparison());
        }
      } while (this.accept(","));
      this.expect(")", `to close the call to ${name.text}`);
    }
    const op = def.byArity?.[args.length] ?? def.name;
    return this.build(name, op, args, Object.keys(attrs).length ? attrs : undefined);
  }

  /** Keyword argument values: numbers, true/false, or bracketed lists of them. */
  private literal(): unknown {
    const t = this.peek();
    if (this.accept("[")) {
      const items: unknown[] = [];
      if (!this.accept("]")) {
        do items.push(this.literal());
        while (this.accept(","));
        this.expect("]", "to close the list");
      }
      return items;
    }
    if (this.accept("-")) {
      const n = this.next();
      if (n.kind !== "number") throw this.error(n, "expected a number after '-'");
      return -(n.value as number);
    }
    const n = this.next();
    if (n.kind === "number") return n.value;
    if (n.kind === "name" && (n.text === "true" || n.text === "false")) return n.text === "true";
    if (n.kind === "name" && n.text === "null") return null;
    throw this.error(t, "expected a number, true, false or a [list] as the keyword value");
  }
}

/** Parses one or more expressions over shared inputs into one validated graph. */
export function parseExpressions(source: ExpressionSource): Graph {
  const b = new GraphBuilder(functionBudget(source.maxNodes));
  let declared: Map<string, InputDeclaration> | undefined;
  if (source.inputs) {
    declared = new Map();
    for (const [i, decl] of source.inputs.entries()) checkName(decl.name, `inputs[${i}]`);
    for (const decl of source.inputs) {
      if (declared.has(decl.name)) throw invalid(`input ${decl.name} is declared twice`, { input: decl.name });
      declared.set(decl.name, decl);
      b.input(decl.name, decl.shape ?? [], decl.dtype ?? "float");
    }
  }
  if (source.outputs.length === 0) throw invalid("a function needs at least one output expression");
  for (const o of source.outputs) checkName(o.name, `outputs.${o.name}`);
  const parser = new Parser(b, declared, source.maxNodes);
  const multiple = source.outputs.length > 1;
  const outputs = source.outputs.map((o) => ({ name: o.name, node: parser.parse(o.text, multiple ? o.name : undefined) }));
  return b.build(outputs);
}

/** A single expression; its output is named `f`. */
export function parseExpression(text: string, inputs?: readonly InputDeclaration[], maxNodes?: number): Graph {
  return parseExpressions({ outputs: [{ name: "f", text }], inputs, maxNodes });
}
