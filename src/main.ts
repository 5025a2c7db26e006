import { CompiledFunction } from "./engine/compiled-function.js";
import { parseExpression } from "./ir/expression.js";
import { toJson } from "./json.js";

// Until the service lands, the main job shows the worked example end to end.
const fn = new CompiledFunction(parseExpression("x1*exp(-0.5*(x1^2+x2^2))"));
process.stdout.write(`${toJson(fn.evaluate({ x1: 2, x2: 0.5 }, { mode: "reverse", trace: true }), 2)}\n`);
