import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument, visit } from "yaml";

export interface OpenApiDocument {
  /** The file as written, served at GET /openapi.yaml. */
  readonly text: string;
  readonly doc: { components: { schemas: Record<string, unknown> } } & Record<string, unknown>;
  readonly path: string;
}

/**
 * openapi.yaml sits at the repository root; this module runs from src/http (tests) or dist/src/http
 * (the build), so it is looked for upwards.
 */
export function findOpenApi(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "openapi.yaml");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error("openapi.yaml not found above src/http");
}

let loaded: OpenApiDocument | undefined;

/** The API description: the routes validate requests against its component schemas. */
export function loadOpenApi(): OpenApiDocument {
  if (loaded) return loaded;
  const path = findOpenApi();
  const text = readFileSync(path, "utf8");
  loaded = { text, doc: parseOneByte(text), path };
  return loaded;
}

/**
 * The document parsed with every string that Latin-1 can hold made a one-byte string. The file holds
 * characters beyond Latin-1 (−, ∂, …), so V8 keeps its text, and every piece the parser cuts from it, as
 * two-byte strings; the doc's keys are then the process's internalized copies of names such as
 * `gradient`, `point` and `x1` (its examples), and every later string of the same name is made to point at
 * them: every answer built from those names became a two-byte string, flattened and converted again to
 * be measured and written (test/service/one-byte-names.test.ts).
 */
function parseOneByte(text: string): OpenApiDocument["doc"] {
  const document = parseDocument(text);
  visit(document, {
    Scalar(_key, node) {
      if (typeof node.value === "string" && !BEYOND_LATIN1.test(node.value))
        node.value = Buffer.from(node.value, "latin1").toString("latin1");
    },
  });
  return document.toJS() as OpenApiDocument["doc"];
}

const BEYOND_LATIN1 = /[\u0100-\uffff]/;

/** The id under which the document's components are registered with fastify's validator. */
export const SCHEMA_ID = "openapi";

/** A route schema reference to a component of openapi.yaml. */
export function ref(name: string): { $ref: string } {
  return { $ref: `${SCHEMA_ID}#/components/schemas/${name}` };
}
