import { SECTION_NAMES, SECTIONS } from "../engine/sections.js";
import { numberJson, quoteJson } from "../json.js";
import type { DifferentiateOutput } from "./types.js";

/**
 * The JSON text of a one-point answer whose every number is a finite scalar (the worked example and
 * most optimiser calls), written straight out, byte for byte what jsonBody and JSON.stringify make of
 * it: building that object first and stringifying it cost several times more than the evaluation.
 * Numbers are written as serializeJson writes them (−0 as `-0.0`, src/json.ts).
 * Undefined for any other answer, which takes the general path (json-view.ts).
 */
export function scalarAnswerJson(out: DifferentiateOutput): string | undefined {
  const row = out.result;
  if (row === undefined || out.results !== undefined || out.columns !== undefined || out.parameters !== undefined) return undefined;
  // Anything besides numeric sections (a trace, a method, a check, sparse structure) is written by the general path.
  for (const key in row) if (!Object.hasOwn(SECTIONS, key)) return undefined;
  const outputs = row.outputs as Record<string, unknown>;
  const names = Object.keys(outputs);
  let text: string | undefined;
  if (names.length === 1) {
    const v = outputs[names[0]];
    if (typeof v !== "number" || !Number.isFinite(v)) return undefined;
    text = `{"value":${numberJson(v)}`;
  } else {
    const m = numbersJson(outputs);
    if (m === undefined) return undefined;
    text = `{"outputs":${m}`;
  }
  for (const section of SECTION_NAMES) {
    const v: unknown = row[section];
    if (section === "outputs" || v === undefined) continue;
    const written = sectionJson(SECTIONS[section], v);
    if (written === undefined) return undefined;
    text += `,"${section}":${written}`;
  }
  return `${text},"id":${quoteJson(out.id)},"mode":${quoteJson(out.mode)}}`;
}

function sectionJson(kind: (typeof SECTIONS)[keyof typeof SECTIONS], v: unknown): string | undefined {
  if (kind === "scalar") return typeof v === "number" && Number.isFinite(v) ? numberJson(v) : undefined;
  if (kind === "map") return numbersJson(v as Record<string, unknown>);
  const nested = v as Record<string, Record<string, unknown>>;
  let text = "{";
  for (const name of Object.keys(nested)) {
    const inner = numbersJson(nested[name]);
    if (inner === undefined) return undefined;
    text += `${text.length > 1 ? "," : ""}${quoteJson(name)}:${inner}`;
  }
  return `${text}}`;
}

/** {name: number, …} with the client's names escaped as JSON strings; undefined unless all are finite numbers. */
function numbersJson(m: Record<string, unknown>): string | undefined {
  let text = "{";
  for (const name of Object.keys(m)) {
    const v = m[name];
    if (typeof v !== "number" || !Number.isFinite(v)) return undefined;
    text += `${text.length > 1 ? "," : ""}${quoteJson(name)}:${numberJson(v)}`;
  }
  return `${text}}`;
}
