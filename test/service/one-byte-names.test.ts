import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { findOpenApi, loadOpenApi } from "../../src/http/openapi.js";
import { builtFile } from "../build-output.js";

/**
 * V8 keeps one copy of each property name, and a name first met as a piece of a two-byte string stays
 * two-byte: every later string of that name points at it. openapi.yaml holds characters beyond Latin-1,
 * and its examples and schemas name what every request and answer is made of (gradient, point, x1…).
 * Loaded first in a fresh process, it must not make those names two-byte, or every answer built from
 * them is a two-byte string, flattened and converted again to be measured and written.
 */
describe("the names openapi.yaml mentions", () => {
  it("parse into the same document as the YAML parser's own", () => {
    expect(loadOpenApi().doc).toEqual(parse(readFileSync(findOpenApi(), "utf8")));
  });

  it("stay one-byte strings in a process that loaded the document first", () => {
    // v8.serialize tags a string by its representation: '"' one-byte, 'c' two-byte.
    const script = `
      import { serialize } from "node:v8";
      const { loadOpenApi } = await import(${JSON.stringify(pathToFileURL(builtFile("dist/src/http/openapi.js")).href)});
      const kept = loadOpenApi();
      const tag = (s) => String.fromCharCode(serialize(s)[2]);
      const request = JSON.parse('{"function":{"expression":"x1*x2"},"point":{"x1":2,"x2":0.5},"mode":"hessian"}');
      const names = [...Object.keys(request), ...Object.keys(request.point), "gradient", "value", "outputs"].map((k) => Object.keys(JSON.parse(\`{"\${k}":0}\`))[0]);
      const answer = \`{"\${names[5]}":1.5,"\${names[6]}":{"\${names[3]}":-0.5}}\`;
      process.stdout.write(JSON.stringify({ names: names.map((n) => [n, tag(n)]), answer: tag(answer), control: tag("\\u2212x1"), held: kept.doc.openapi }));
    `;
    const out = JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }));
    expect(out.control).toBe("c");
    expect(out.held).toMatch(/^3\./);
    expect(out.names).toEqual(["function", "point", "mode", "x1", "x2", "gradient", "value", "outputs"].map((n) => [n, '"']));
    expect(out.answer).toBe('"');
  });
});
