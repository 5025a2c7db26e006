import { create } from "@bufbuild/protobuf";
import type { PatternCsr, SparsityReport } from "../engine/modes/index.js";
import { own, recordOf } from "../names.js";
import type { ColumnsResult, ResultRow } from "../service/types.js";
import {
  type SparseMatrix,
  type SparseMatrixMap,
  SparseMatrixMapSchema,
  SparseMatrixSchema,
  SparsitySchema,
  type Tensor,
} from "./gen/adjoint/v1/adjoint_pb.js";

/**
 * The sparse parts of a Result: a sparse jacobian's or hessian's blocks (whose data the dense
 * section's tensors hold) as SparseMatrix messages in sparse_jacobian and sparse_hessian, the colour
 * count, and the sparsity mode's patterns. Returns the fields to set and the sections to drop.
 */
export function sparseResult(
  r: ResultRow | ColumnsResult,
  converted: Record<string, unknown>,
): { fields: Record<string, unknown>; drop: readonly string[] } {
  const fields: Record<string, unknown> = {};
  const drop: string[] = [];
  if (r.colors !== undefined) fields.colors = r.colors;
  if (r.csr) {
    const csr = r.csr;
    for (const [section, target] of [
      ["jacobian", "sparseJacobian"],
      ["hessian", "sparseHessian"],
    ] as const) {
      const tensors = converted[section] as Record<string, Record<string, Tensor>> | undefined;
      if (tensors === undefined) continue;
      fields[target] = recordOf(
        Object.keys(tensors).map((name) => [
          name,
          matrixMap(
            recordOf(
              Object.keys(tensors[name]).map((key) => [key, matrix(own(own(csr, name) ?? {}, key) as PatternCsr, tensors[name][key])]),
            ),
          ),
        ]),
      );
      drop.push(section);
    }
  }
  if (r.sparsity) fields.sparsity = sparsityMessage(r.sparsity);
  return { fields, drop };
}

function matrix(block: PatternCsr, data?: Tensor): SparseMatrix {
  return create(SparseMatrixSchema, {
    shape: [...block.shape],
    indptr: Array.from(block.indptr),
    indices: Array.from(block.indices),
    data,
  });
}

function matrixMap(matrices: Record<string, SparseMatrix>): SparseMatrixMap {
  return create(SparseMatrixMapSchema, { matrices });
}

function patterns(m: Record<string, Record<string, PatternCsr>>): Record<string, SparseMatrixMap> {
  return recordOf(
    Object.entries(m).map(([name, inner]) => [name, matrixMap(recordOf(Object.entries(inner).map(([k, b]) => [k, matrix(b)])))]),
  );
}

function sparsityMessage(s: SparsityReport) {
  return create(SparsitySchema, {
    jacobian: patterns(s.jacobian),
    hessian: s.hessian ? patterns(s.hessian) : {},
    jacobianColors: s.colors.jacobian,
    jacobianMethod: s.colors.method,
    hessianColors: s.colors.hessian ?? 0,
  });
}
