import { type AdjointError, invalid } from "../errors.js";
import { BudgetExceeded } from "./budget.js";

/** The expression tokenizer, apart from the parser so each stays readable on its own. */

/**
 * Tokens allowed per node of the limit: generous (a call with keyword lists or a slice spends a dozen
 * tokens on one node), yet it stops a huge text that folds to few nodes, such as 0+0+0+…, early.
 */
const TOKENS_PER_NODE = 16;

export type TokenKind = "number" | "name" | "op" | "end";
export interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  /** 0-based offset into the text. */
  readonly at: number;
  readonly value?: number;
}

const OPERATORS = ["**", "<=", ">=", "==", "!=", "+", "-", "*", "/", "^", "@", "(", ")", ",", "<", ">", "=", "[", "]", ":"];

/** A message with the text and a caret under the offending column. */
export function pointAt(text: string, at: number, message: string, output?: string): AdjointError {
  const line = text.replace(/[\r\n\t]/g, " ");
  const prefix = output === undefined ? "" : `output ${output}: `;
  return invalid(`${prefix}${message} at column ${at + 1}\n  ${line}\n  ${" ".repeat(at)}^`, { position: at + 1 });
}

export function tokenize(text: string, output: string | undefined, maxNodes: number): Token[] {
  const tokens: Token[] = [];
  const maxTokens = TOKENS_PER_NODE * maxNodes + 64;
  let i = 0;
  const numberPattern = /(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;
  const namePattern = /[A-Za-z_][A-Za-z0-9_]*/y;
  while (i < text.length) {
    const ch = text[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (tokens.length >= maxTokens) {
      throw new BudgetExceeded(
        `${output === undefined ? "the expression" : `output ${output}`} is longer than ${maxTokens} tokens, more than a function of ${maxNodes} nodes needs; the limit is ${maxNodes} nodes (ADJOINT_MAX_NODES)`,
        false,
      );
    }
    numberPattern.lastIndex = i;
    const num = numberPattern.exec(text);
    if (num) {
      const value = Number(num[0]);
      if (!Number.isFinite(value)) throw pointAt(text, i, `number ${num[0]} is out of range`, output);
      tokens.push({ kind: "number", text: num[0], at: i, value });
      i += num[0].length;
      continue;
    }
    namePattern.lastIndex = i;
    const name = namePattern.exec(text);
    if (name) {
      tokens.push({ kind: "name", text: name[0], at: i });
      i += name[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (!op) throw pointAt(text, i, `unexpected character '${ch}'`, output);
    tokens.push({ kind: "op", text: op, at: i });
    i += op.length;
  }
  tokens.push({ kind: "end", text: "end of input", at: text.length });
  return tokens;
}
