import { own, record } from "../names.js";
import type { Value } from "./values.js";

/**
 * The numeric sections of an answer, and how each is keyed: by one name (an output or input), by two
 * (output and input of a Jacobian, the two inputs of a Hessian), or not at all (one number). Batch
 * layouts, result rows, columns, JSON and gRPC all read this table, so a new section is one entry.
 */
export const SECTIONS = {
  outputs: "map",
  gradient: "map",
  jvp: "map",
  vjp: "map",
  hvp: "map",
  jacobian: "nested",
  hessian: "nested",
  derivative: "scalar",
  divergence: "scalar",
  laplacian: "scalar",
} as const;

export type Section = keyof typeof SECTIONS;
export const SECTION_NAMES = Object.keys(SECTIONS) as Section[];

/** What each kind of section holds, given what one field is (`F`) and what a scalar section is (`S`). */
interface SectionKinds<F, S> {
  readonly map: Record<string, F>;
  readonly nested: Record<string, Record<string, F>>;
  readonly scalar: S;
}

/**
 * The numeric sections of an answer, each typed by its kind in SECTIONS: for one point a field is a
 * Value and a scalar section a number; for a batch by columns both are a column.
 */
export type SectionsOf<F, S = F> = { readonly [K in Section]?: SectionKinds<F, S>[(typeof SECTIONS)[K]] };

/** The numeric sections of an engine answer. */
export type SectionValues = SectionsOf<Value, number>;

/** Where one field lives in an answer: its section, its name in it (map, nested) and key (nested). */
export interface FieldPath {
  readonly section: Section;
  readonly name: string;
  readonly key?: string;
}

/** A field's value in an engine answer. */
export function fieldValue(evaluation: SectionValues, f: FieldPath): Value {
  const section = evaluation[f.section];
  switch (SECTIONS[f.section]) {
    case "scalar":
      return section as number;
    case "map":
      return own(section as Record<string, Value>, f.name) as Value;
    case "nested":
      return own(own(section as Record<string, Record<string, Value>>, f.name) ?? {}, f.key as string) as Value;
  }
}

/**
 * Puts a field's value into a row (or columns) object being built. Section names are ours; the
 * records under them are keyed by the client's names, so they have no prototype.
 */
export function setField<T>(row: Record<string, unknown>, f: FieldPath, value: T): void {
  const kind = SECTIONS[f.section];
  if (kind === "scalar") {
    row[f.section] = value;
    return;
  }
  const section = (row[f.section] ??= record()) as Record<string, unknown>;
  if (kind === "map") section[f.name] = value;
  else {
    let inner = own(section, f.name) as Record<string, unknown> | undefined;
    if (inner === undefined) section[f.name] = inner = record();
    inner[f.key as string] = value;
  }
}

/**
 * Whether `test` holds for every value of a row's numeric sections (stopping at the first that fails).
 * A loop rather than a generator: it runs on every answer, where a generator's allocations show.
 */
export function everySectionValue<T>(row: Partial<Record<Section, unknown>>, test: (v: T) => boolean): boolean {
  for (const s of SECTION_NAMES) {
    const v = row[s];
    if (v === undefined) continue;
    const kind = SECTIONS[s];
    if (kind === "scalar") {
      if (!test(v as T)) return false;
    } else if (kind === "map") {
      if (!everyValue(v as Record<string, T>, test)) return false;
    } else {
      const nested = v as Record<string, Record<string, T>>;
      for (const k in nested) if (!everyValue(nested[k], test)) return false;
    }
  }
  return true;
}

function everyValue<T>(m: Record<string, T>, test: (v: T) => boolean): boolean {
  for (const k in m) if (!test(m[k])) return false;
  return true;
}

/** Maps every value of a row's numeric sections, keeping the structure. */
export function mapSections<T, U>(row: Partial<Record<Section, unknown>>, f: (v: T) => U): Partial<Record<Section, unknown>> {
  const out: Partial<Record<Section, unknown>> = {};
  for (const s of SECTION_NAMES) {
    const v = row[s];
    if (v === undefined) continue;
    const kind = SECTIONS[s];
    if (kind === "scalar") out[s] = f(v as T);
    else if (kind === "map") out[s] = mapObject(v as Record<string, T>, f);
    else out[s] = mapObject(v as Record<string, Record<string, T>>, (m) => mapObject(m, f));
  }
  return out;
}

function mapObject<T, U>(m: Record<string, T>, f: (v: T) => U): Record<string, U> {
  const out = record<U>();
  for (const k of Object.keys(m)) out[k] = f(m[k]);
  return out;
}
