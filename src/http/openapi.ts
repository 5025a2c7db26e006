import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

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
  loaded = { text, doc: parse(text), path };
  return loaded;
}

/** The id under which the document's components are registered with fastify's validator. */
export const SCHEMA_ID = "openapi";

/** A route schema reference to a component of openapi.yaml. */
export function ref(name: string): { $ref: string } {
  return { $ref: `${SCHEMA_ID}#/components/schemas/${name}` };
}
