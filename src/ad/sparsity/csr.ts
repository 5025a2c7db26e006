/** A sparsity pattern in CSR form: row r's nonzero columns are indices[indptr[r] .. indptr[r + 1]), sorted. */
export interface SparsityPattern {
  readonly rows: number;
  readonly cols: number;
  readonly indptr: Int32Array;
  readonly indices: Int32Array;
}
