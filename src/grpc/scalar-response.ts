import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { SECTION_NAMES, SECTIONS, type Section } from "../engine/sections.js";
import type { DifferentiateOutput } from "../service/types.js";

/**
 * The DifferentiateResponse of a one-point answer whose every number is a scalar (the worked example,
 * an optimiser's calls), written with protobuf-es's wire writer straight from the answer: byte for
 * byte what `toBinary(differentiateResponse(out))` gives, without building the messages first, which
 * cost several times the evaluation in allocation alone. Undefined for any other answer.
 */
export function scalarResponseBytes(out: DifferentiateOutput, sequence = 0): Uint8Array | undefined {
  const row = out.result;
  if (row === undefined || out.results !== undefined || out.columns !== undefined || out.parameters !== undefined) return undefined;
  // Anything besides numeric sections (a trace, a method, a check, sparse structure) takes the general path.
  for (const key in row) if (!Object.hasOwn(SECTIONS, key)) return undefined;
  for (const section of SECTION_NAMES) {
    const v: unknown = row[section];
    if (v !== undefined && !allNumbers(SECTIONS[section], v)) return undefined;
  }
  const w = new BinaryWriter();
  if (out.id !== "") w.tag(RESPONSE.id, WireType.LengthDelimited).string(out.id);
  if (out.mode !== "") w.tag(RESPONSE.mode, WireType.LengthDelimited).string(out.mode);
  w.tag(RESPONSE.result, WireType.LengthDelimited).fork();
  for (const section of SECTION_NAMES) {
    const v: unknown = row[section];
    if (v === undefined) continue;
    const kind = SECTIONS[section];
    if (kind === "scalar") {
      w.tag(RESULT_FIELD[section], WireType.LengthDelimited).fork();
      scalarTensor(w, v as number);
      w.join();
    } else if (kind === "map") tensorMap(w, RESULT_FIELD[section], v as Record<string, number>);
    else {
      const nested = v as Record<string, Record<string, number>>;
      for (const name of Object.keys(nested)) {
        // A map entry whose value is a TensorMap, whose one field is itself a map of tensors.
        w.tag(RESULT_FIELD[section], WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(name);
        w.tag(2, WireType.LengthDelimited).fork();
        tensorMap(w, 1, nested[name]);
        w.join().join();
      }
    }
  }
  // Result.value (16, after the sections' 1–12, as protobuf-es writes fields by number): the one output again.
  const outputs = row.outputs as Record<string, number>;
  let single: string | undefined;
  let count = 0;
  for (const name in outputs) if (Object.hasOwn(outputs, name) && count++ === 0) single = name;
  if (count === 1) {
    w.tag(RESULT_VALUE, WireType.LengthDelimited).fork();
    scalarTensor(w, outputs[single as string]);
    w.join();
  }
  w.join();
  if (sequence !== 0) w.tag(RESPONSE.sequence, WireType.Varint).uint64(sequence);
  return w.finish();
}

/** Field numbers of DifferentiateResponse and Result (proto/adjoint/v1/adjoint.proto) that this writes. */
const RESPONSE = { id: 1, mode: 2, result: 3, sequence: 6 } as const;
const RESULT_VALUE = 16;
const RESULT_FIELD: Readonly<Record<Section, number>> = {
  outputs: 1,
  gradient: 2,
  jvp: 3,
  vjp: 4,
  hvp: 7,
  jacobian: 8,
  hessian: 9,
  derivative: 10,
  divergence: 11,
  laplacian: 12,
};

function allNumbers(kind: (typeof SECTIONS)[Section], v: unknown): boolean {
  if (kind === "scalar") return typeof v === "number";
  const values = kind === "map" ? [v] : Object.values(v as Record<string, unknown>);
  return values.every((m) => Object.values(m as Record<string, unknown>).every((x) => typeof x === "number"));
}

/** A map<string, Tensor> field: one entry per name, each scalar a Tensor with one value. */
function tensorMap(w: BinaryWriter, field: number, m: Record<string, number>): void {
  for (const name of Object.keys(m)) {
    w.tag(field, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(name);
    w.tag(2, WireType.LengthDelimited).fork();
    scalarTensor(w, m[name]);
    w.join().join();
  }
}

/** Tensor{values: [v]}: the packed repeated double, field 3. */
function scalarTensor(w: BinaryWriter, v: number): void {
  w.tag(3, WireType.LengthDelimited).fork().double(v).join();
}
