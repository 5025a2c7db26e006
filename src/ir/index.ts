export { GraphBuilder } from "./builder.js";
export { type ExpressionSource, type InputDeclaration, parseExpression, parseExpressions } from "./expression.js";
export { Graph, type IrNode, type NamedNode } from "./graph.js";
export { contentHash } from "./hash.js";
export { type JsonGraph, readJsonGraph } from "./json-graph.js";
export { activeNodes, originTable, selectInputs, selectOutputs } from "./select.js";
