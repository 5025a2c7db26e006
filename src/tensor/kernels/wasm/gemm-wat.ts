/**
 * Generator of the WebAssembly text for the SIMD matrix-multiply kernels.
 *
 * The text is produced by code (the micro-kernel is fully unrolled over its register tile, which is
 * tedious and error-prone to write by hand) and assembled by `assemble.ts` (a development script that
 * uses the `wabt` devDependency) into `gemm-wasm.generated.ts`, which is committed. A test checks that
 * the committed bytes are what this generator produces, so the two cannot drift apart.
 *
 * The module imports one shared memory (`env.memory`) and exports, for each element type T in
 * {f64, f32}:
 *
 *   gemm_T(m, n, k, a, ars, acs, b, brs, bcs, c, ldc, beta, work)
 *
 * computing C = op(A)·op(B) (beta = 0) or C += op(A)·op(B) (beta = 1), where op(A) is m×k with element
 * (i, p) at byte address a + (i·ars + p·acs)·sizeof(T), op(B) is k×n with element (p, j) at
 * b + (p·brs + j·bcs)·sizeof(T), and C is m×n with element (i, j) at c + (i·ldc + j)·sizeof(T). `work` is
 * the byte address of a 16-byte-aligned scratch area of `work_bytes_T()` bytes (packed panels of A and B).
 * k must be at least 1 (the caller handles k = 0).
 *
 * and, for convolutions, im2col_T and col2im_T (see convFunctions).
 *
 * The algorithm is the GotoBLAS/BLIS one: blocks of NC columns of B, ≤ KC of the shared dimension (split
 * into equal blocks) and MC
 * rows of A are packed into contiguous panels (zero-padded to whole MR×NR tiles) and an MR×NR register
 * tile of C is computed by a micro-kernel that streams one A panel and one B panel. Each element of C is
 * the sum over p in increasing order, whatever the tiling, so the result of a row does not depend on
 * which rows are computed alongside it (row-range splits over threads are bitwise identical).
 */

export interface GemmVariant {
  /** Element type. */
  type: "f64" | "f32";
  /** Rows of the register tile. */
  mr: number;
  /** Columns of the register tile (a multiple of the lanes per vector). */
  nr: number;
  /** Rows of A per packed block. Multiple of mr. */
  mc: number;
  /** Depth of the packed blocks. */
  kc: number;
  /** Columns of B per packed block. Multiple of nr. */
  nc: number;
  /** Unroll factor of the micro-kernel's loop over the shared dimension. */
  unroll: number;
  /**
   * Multiply-add with relaxed SIMD's `f64x2.relaxed_madd` / `f32x4.relaxed_madd` (one fused, singly
   * rounded FMA where the hardware has it; mul then add where it does not) instead of `mul` then `add`.
   * Needs the relaxed-simd feature to assemble and an engine with relaxed SIMD to run (Node ≥ 24).
   */
  fma?: boolean;
}

export const DEFAULT_VARIANTS: readonly GemmVariant[] = [
  // Measured on x64 (Zen 3, Node 20), where V8 gives wasm 15 xmm registers: a 5-row tile holds 10
  // v128 accumulators + B's 2 vectors + A's splat + a product, 5–8% faster than 4 rows; 6×4, 4×6,
  // 3×6, 6×8 and unrolling the k loop by 2 spill or schedule worse (10–30% slower).
  { type: "f64", mr: 5, nr: 4, mc: 60, kc: 256, nc: 1024, unroll: 1 },
  { type: "f32", mr: 5, nr: 8, mc: 60, kc: 256, nc: 1024, unroll: 1 },
];

/** The same tiles with the relaxed-SIMD multiply-add (see GemmVariant.fma and bench/kernels/matmul-relaxed.ts). */
export const RELAXED_VARIANTS: readonly GemmVariant[] = DEFAULT_VARIANTS.map((v) => ({ ...v, fma: true }));

/** Bytes of scratch that gemm needs for a variant. */
export function workBytes(v: GemmVariant): number {
  const e = v.type === "f64" ? 8 : 4;
  return (v.kc * v.nc + v.mc * v.kc + v.mr * v.nr) * e;
}

function gemmFunctions(v: GemmVariant, suffix: string): string {
  const T = v.type;
  const E = T === "f64" ? 8 : 4;
  const lanes = 16 / E;
  const vt = T === "f64" ? "f64x2" : "f32x4";
  const splat = T === "f64" ? "v128.load64_splat" : "v128.load32_splat";
  const { mr, nr, mc, kc, nc, unroll } = v;
  if (nr % lanes !== 0) throw new Error("nr must be a multiple of the vector lanes");
  if (mc % mr !== 0 || nc % nr !== 0) throw new Error("mc and nc must be multiples of mr and nr");
  const nv = nr / lanes;
  const name = `${T}${suffix}`;
  const L: string[] = [];
  const acc = (r: number, q: number) => `$c${r}_${q}`;

  // ---- micro-kernel -------------------------------------------------------------------------------
  L.push(
    `  (func $micro_${name} (param $kc i32) (param $ap i32) (param $bp i32) (param $c i32) (param $ldc i32) (param $mr i32) (param $nr i32) (param $beta i32) (param $tmp i32)`,
  );
  const locals: string[] = [];
  for (let r = 0; r < mr; r++) for (let q = 0; q < nv; q++) locals.push(`(local ${acc(r, q)} v128)`);
  for (let q = 0; q < nv; q++) locals.push(`(local $b${q} v128)`);
  locals.push("(local $a v128) (local $n i32) (local $row i32) (local $i i32) (local $j i32) (local $p i32) (local $t i32)");
  L.push(`    ${locals.join(" ")}`);
  const step = (u: number) => {
    const out: string[] = [];
    for (let q = 0; q < nv; q++) out.push(`      (local.set $b${q} (v128.load offset=${(u * nr + q * lanes) * E} (local.get $bp)))`);
    for (let r = 0; r < mr; r++) {
      out.push(`      (local.set $a (${splat} offset=${(u * mr + r) * E} (local.get $ap)))`);
      for (let q = 0; q < nv; q++) {
        out.push(
          v.fma
            ? `      (local.set ${acc(r, q)} (${vt}.relaxed_madd (local.get $a) (local.get $b${q}) (local.get ${acc(r, q)})))`
            : `      (local.set ${acc(r, q)} (${vt}.add (local.get ${acc(r, q)}) (${vt}.mul (local.get $a) (local.get $b${q}))))`,
        );
      }
    }
    return out;
  };
  // Unrolled main loop over groups of `unroll` steps, then single steps for the remainder.
  L.push(`    (local.set $n (i32.div_u (local.get $kc) (i32.const ${unroll})))`);
  L.push("    (if (local.get $n) (then (loop $ku");
  for (let u = 0; u < unroll; u++) L.push(...step(u));
  L.push(`      (local.set $ap (i32.add (local.get $ap) (i32.const ${unroll * mr * E})))`);
  L.push(`      (local.set $bp (i32.add (local.get $bp) (i32.const ${unroll * nr * E})))`);
  L.push("      (br_if $ku (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))");
  if (unroll > 1) {
    L.push(`    (local.set $n (i32.rem_u (local.get $kc) (i32.const ${unroll})))`);
    L.push("    (if (local.get $n) (then (loop $k1");
    L.push(...step(0));
    L.push(`      (local.set $ap (i32.add (local.get $ap) (i32.const ${mr * E})))`);
    L.push(`      (local.set $bp (i32.add (local.get $bp) (i32.const ${nr * E})))`);
    L.push("      (br_if $k1 (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))");
  }
  // Store: whole tile straight into C, partial tile through tmp.
  L.push(`    (if (i32.and (i32.eq (local.get $mr) (i32.const ${mr})) (i32.eq (local.get $nr) (i32.const ${nr})))`);
  L.push("      (then");
  L.push(`        (local.set $t (i32.mul (local.get $ldc) (i32.const ${E})))`);
  L.push("        (local.set $row (local.get $c))");
  L.push("        (if (local.get $beta) (then");
  for (let r = 0; r < mr; r++) {
    for (let q = 0; q < nv; q++) {
      L.push(
        `          (v128.store offset=${q * 16} (local.get $row) (${vt}.add (v128.load offset=${q * 16} (local.get $row)) (local.get ${acc(r, q)})))`,
      );
    }
    if (r < mr - 1) L.push("          (local.set $row (i32.add (local.get $row) (local.get $t)))");
  }
  L.push("        ) (else");
  for (let r = 0; r < mr; r++) {
    for (let q = 0; q < nv; q++) L.push(`          (v128.store offset=${q * 16} (local.get $row) (local.get ${acc(r, q)}))`);
    if (r < mr - 1) L.push("          (local.set $row (i32.add (local.get $row) (local.get $t)))");
  }
  L.push("        )))");
  L.push("      (else");
  for (let r = 0; r < mr; r++) {
    for (let q = 0; q < nv; q++)
      L.push(`        (v128.store offset=${(r * nr + q * lanes) * E} (local.get $tmp) (local.get ${acc(r, q)}))`);
  }
  // for i < mr: for j < nr: C[i, j] = (beta ? C[i, j] : 0) + tmp[i*NR + j]
  L.push("        (local.set $i (i32.const 0))");
  L.push("        (loop $si");
  L.push(`          (local.set $row (i32.add (local.get $c) (i32.mul (i32.mul (local.get $i) (local.get $ldc)) (i32.const ${E}))))`);
  L.push(`          (local.set $p (i32.add (local.get $tmp) (i32.mul (local.get $i) (i32.const ${nr * E}))))`);
  L.push("          (local.set $j (i32.const 0))");
  L.push("          (loop $sj");
  L.push(`            (${T}.store (local.get $row) (if (result ${T}) (local.get $beta)`);
  L.push(`              (then (${T}.add (${T}.load (local.get $row)) (${T}.load (local.get $p))))`);
  L.push(`              (else (${T}.load (local.get $p)))))`);
  L.push(`            (local.set $row (i32.add (local.get $row) (i32.const ${E})))`);
  L.push(`            (local.set $p (i32.add (local.get $p) (i32.const ${E})))`);
  L.push("            (br_if $sj (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $nr))))");
  L.push("          (br_if $si (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $mr))))");
  L.push("      ))");
  L.push("  )");

  // ---- packing ------------------------------------------------------------------------------------
  // pack(src, rs, cs, rows, depth, dst, R): for each panel of R rows (zero-padded), for p < depth,
  // for r < R: dst[...] = src[(i + r)·rs + p·cs]. Used for A (rows = m, R = mr) and for B seen as its
  // transpose (rows = n, R = nr, rs = bcs, cs = brs).
  for (const [which, R] of [
    ["a", mr],
    ["b", nr],
  ] as const) {
    L.push(
      `  (func $pack${which}_${name} (param $src i32) (param $rs i32) (param $cs i32) (param $rows i32) (param $depth i32) (param $dst i32)`,
    );
    L.push(
      "    (local $i i32) (local $r i32) (local $p i32) (local $live i32) (local $s i32) (local $q i32) (local $rsb i32) (local $csb i32)",
    );
    L.push(`    (local.set $rsb (i32.mul (local.get $rs) (i32.const ${E})))`);
    L.push(`    (local.set $csb (i32.mul (local.get $cs) (i32.const ${E})))`);
    L.push("    (local.set $i (i32.const 0))");
    L.push("    (loop $panels");
    // live rows in this panel
    L.push("      (local.set $live (i32.sub (local.get $rows) (local.get $i)))");
    L.push(`      (if (i32.gt_u (local.get $live) (i32.const ${R})) (then (local.set $live (i32.const ${R}))))`);
    // Whole panel whose R values per p are adjacent in memory (rs = 1: B stored k×n, or A transposed):
    // copy R·sizeof(T) contiguous bytes per p with v128 moves.
    L.push(`      (if (i32.and (i32.eq (local.get $rs) (i32.const 1)) (i32.eq (local.get $live) (i32.const ${R})))`);
    L.push("        (then");
    L.push(`          (local.set $s (i32.add (local.get $src) (i32.mul (local.get $i) (i32.const ${E}))))`);
    L.push("          (local.set $q (local.get $dst))");
    L.push("          (local.set $p (local.get $depth))");
    L.push("          (loop $fast");
    {
      let off = 0;
      const bytes = R * E;
      for (; off + 16 <= bytes; off += 16) {
        L.push(`            (v128.store offset=${off} (local.get $q) (v128.load offset=${off} (local.get $s)))`);
      }
      for (; off < bytes; off += E) {
        L.push(`            (${T}.store offset=${off} (local.get $q) (${T}.load offset=${off} (local.get $s)))`);
      }
    }
    L.push("            (local.set $s (i32.add (local.get $s) (local.get $csb)))");
    L.push(`            (local.set $q (i32.add (local.get $q) (i32.const ${R * E})))`);
    L.push("            (br_if $fast (local.tee $p (i32.sub (local.get $p) (i32.const 1))))))");
    L.push("        (else");
    // Otherwise one strided column of the panel at a time, zeros past the live rows.
    L.push("      (local.set $r (i32.const 0))");
    L.push("      (loop $cols");
    L.push(`        (local.set $q (i32.add (local.get $dst) (i32.mul (local.get $r) (i32.const ${E}))))`);
    L.push("        (if (i32.lt_u (local.get $r) (local.get $live))");
    L.push("          (then");
    L.push("            (local.set $s (i32.add (local.get $src) (i32.mul (i32.add (local.get $i) (local.get $r)) (local.get $rsb))))");
    L.push("            (local.set $p (local.get $depth))");
    L.push("            (loop $copy");
    L.push(`              (${T}.store (local.get $q) (${T}.load (local.get $s)))`);
    L.push("              (local.set $s (i32.add (local.get $s) (local.get $csb)))");
    L.push(`              (local.set $q (i32.add (local.get $q) (i32.const ${R * E})))`);
    L.push("              (br_if $copy (local.tee $p (i32.sub (local.get $p) (i32.const 1))))))");
    L.push("          (else");
    L.push("            (local.set $p (local.get $depth))");
    L.push("            (loop $zero");
    L.push(`              (${T}.store (local.get $q) (${T}.const 0))`);
    L.push(`              (local.set $q (i32.add (local.get $q) (i32.const ${R * E})))`);
    L.push("              (br_if $zero (local.tee $p (i32.sub (local.get $p) (i32.const 1)))))))");
    L.push(`        (br_if $cols (i32.lt_u (local.tee $r (i32.add (local.get $r) (i32.const 1))) (i32.const ${R}))))`);
    L.push("      ))");
    L.push(`      (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $depth) (i32.const ${R * E}))))`);
    L.push(`      (br_if $panels (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const ${R}))) (local.get $rows))))`);
    L.push("  )");
  }

  // ---- driver -------------------------------------------------------------------------------------
  L.push(
    `  (func $gemm_${name} (export "gemm_${name}") (param $m i32) (param $n i32) (param $k i32) (param $a i32) (param $ars i32) (param $acs i32) (param $b i32) (param $brs i32) (param $bcs i32) (param $c i32) (param $ldc i32) (param $beta i32) (param $work i32)`,
  );
  L.push(
    "    (local $jc i32) (local $nc i32) (local $pc i32) (local $kc i32) (local $ic i32) (local $mc i32) (local $jr i32) (local $ir i32) (local $bpack i32) (local $apack i32) (local $tmp i32) (local $bt i32) (local $nrr i32) (local $crow i32) (local $kcb i32)",
  );
  L.push("    (local.set $bpack (local.get $work))");
  L.push(`    (local.set $apack (i32.add (local.get $work) (i32.const ${kc * nc * E})))`);
  L.push(`    (local.set $tmp (i32.add (local.get $apack) (i32.const ${mc * kc * E})))`);
  // Depth blocks of equal size (at most KC): ⌈k / ⌈k / KC⌉⌉, so no tiny last block re-reads C.
  L.push(`    (local.set $kcb (i32.div_u (i32.add (local.get $k) (i32.const ${kc - 1})) (i32.const ${kc})))`);
  L.push("    (local.set $kcb (i32.div_u (i32.add (local.get $k) (i32.sub (local.get $kcb) (i32.const 1))) (local.get $kcb)))");
  L.push("    (local.set $jc (i32.const 0))");
  L.push("    (loop $ljc");
  L.push("      (local.set $nc (i32.sub (local.get $n) (local.get $jc)))");
  L.push(`      (if (i32.gt_u (local.get $nc) (i32.const ${nc})) (then (local.set $nc (i32.const ${nc}))))`);
  L.push("      (local.set $pc (i32.const 0))");
  L.push("      (loop $lpc");
  L.push("        (local.set $kc (i32.sub (local.get $k) (local.get $pc)))");
  L.push("        (if (i32.gt_u (local.get $kc) (local.get $kcb)) (then (local.set $kc (local.get $kcb))))");
  L.push(
    `        (call $packb_${name} (i32.add (local.get $b) (i32.mul (i32.add (i32.mul (local.get $pc) (local.get $brs)) (i32.mul (local.get $jc) (local.get $bcs))) (i32.const ${E}))) (local.get $bcs) (local.get $brs) (local.get $nc) (local.get $kc) (local.get $bpack))`,
  );
  // beta for this depth block: the caller's for the first, 1 after.
  L.push("        (local.set $bt (if (result i32) (local.get $pc) (then (i32.const 1)) (else (local.get $beta))))");
  L.push("        (local.set $ic (i32.const 0))");
  L.push("        (loop $lic");
  L.push("          (local.set $mc (i32.sub (local.get $m) (local.get $ic)))");
  L.push(`          (if (i32.gt_u (local.get $mc) (i32.const ${mc})) (then (local.set $mc (i32.const ${mc}))))`);
  L.push(
    `          (call $packa_${name} (i32.add (local.get $a) (i32.mul (i32.add (i32.mul (local.get $ic) (local.get $ars)) (i32.mul (local.get $pc) (local.get $acs))) (i32.const ${E}))) (local.get $ars) (local.get $acs) (local.get $mc) (local.get $kc) (local.get $apack))`,
  );
  L.push("          (local.set $jr (i32.const 0))");
  L.push("          (loop $ljr");
  L.push("            (local.set $nrr (i32.sub (local.get $nc) (local.get $jr)))");
  L.push(`            (if (i32.gt_u (local.get $nrr) (i32.const ${nr})) (then (local.set $nrr (i32.const ${nr}))))`);
  L.push("            (local.set $ir (i32.const 0))");
  L.push("            (loop $lir");
  L.push(
    `              (local.set $crow (i32.add (local.get $c) (i32.mul (i32.add (i32.mul (i32.add (local.get $ic) (local.get $ir)) (local.get $ldc)) (i32.add (local.get $jc) (local.get $jr))) (i32.const ${E}))))`,
  );
  L.push(
    `              (call $micro_${name} (local.get $kc) (i32.add (local.get $apack) (i32.mul (i32.mul (local.get $ir) (local.get $kc)) (i32.const ${E}))) (i32.add (local.get $bpack) (i32.mul (i32.mul (local.get $jr) (local.get $kc)) (i32.const ${E}))) (local.get $crow) (local.get $ldc)`,
  );
  L.push(
    `                (select (i32.sub (local.get $mc) (local.get $ir)) (i32.const ${mr}) (i32.lt_u (i32.sub (local.get $mc) (local.get $ir)) (i32.const ${mr}))) (local.get $nrr) (local.get $bt) (local.get $tmp))`,
  );
  L.push(`              (br_if $lir (i32.lt_u (local.tee $ir (i32.add (local.get $ir) (i32.const ${mr}))) (local.get $mc))))`);
  L.push(`            (br_if $ljr (i32.lt_u (local.tee $jr (i32.add (local.get $jr) (i32.const ${nr}))) (local.get $nc))))`);
  L.push(`          (br_if $lic (i32.lt_u (local.tee $ic (i32.add (local.get $ic) (i32.const ${mc}))) (local.get $m))))`);
  L.push("        (br_if $lpc (i32.lt_u (local.tee $pc (i32.add (local.get $pc) (local.get $kcb))) (local.get $k))))");
  L.push(`      (br_if $ljc (i32.lt_u (local.tee $jc (i32.add (local.get $jc) (i32.const ${nc}))) (local.get $n))))`);
  L.push("  )");
  L.push(`  (func (export "work_bytes_${name}") (result i32) (i32.const ${workBytes(v)}))`);
  return L.join("\n");
}

/** `(block (loop …))` running `body` for v = start, start + 1, … while v < limit (possibly never). */
function forLoop(v: string, start: string, limit: string, body: string[], indent: string): string[] {
  return [
    `${indent}(local.set ${v} ${start})`,
    `${indent}(block $end${v} (loop $next${v}`,
    `${indent}  (br_if $end${v} (i32.ge_s (local.get ${v}) ${limit}))`,
    ...body.map((line) => `  ${line}`),
    `${indent}  (local.set ${v} (i32.add (local.get ${v}) (i32.const 1)))`,
    `${indent}  (br $next${v})))`,
  ];
}

/**
 * im2col_T and col2im_T for 2-D convolution (NCHW, one image), over byte addresses in memory:
 *
 *   im2col_T(x, C, H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, cols)
 *     cols[(c·KH + i)·KW + j, oh·OW + ow] = x[c, oh·sh − pt + i·dh, ow·sw − pl + j·dw], 0 in the padding
 *   col2im_T(cols, C, H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, x)
 *     the adjoint: x[c, ih, iw] += every cols entry that im2col would read from it
 */
function convFunctions(T: "f64" | "f32"): string {
  const E = T === "f64" ? 8 : 4;
  const L: string[] = [];
  for (const which of ["im2col", "col2im"] as const) {
    const gather = which === "im2col";
    // src/dst: for im2col, $x is read and $cols written; for col2im, $cols is read and $x updated.
    L.push(
      `  (func (export "${which}_${T}") (param ${gather ? "$x" : "$cols"} i32) (param $C i32) (param $H i32) (param $W i32) (param $KH i32) (param $KW i32) (param $sh i32) (param $sw i32) (param $pt i32) (param $pl i32) (param $dh i32) (param $dw i32) (param $OH i32) (param $OW i32) (param ${gather ? "$cols" : "$x"} i32)`,
    );
    L.push(
      "    (local $c i32) (local $i i32) (local $j i32) (local $oh i32) (local $ow i32) (local $lo i32) (local $hi i32) (local $d i32) (local $ih i32) (local $xc i32) (local $s i32) (local $swb i32) (local $plane i32)",
    );
    L.push(`    (local.set $swb (i32.mul (local.get $sw) (i32.const ${E})))`);
    L.push(`    (local.set $plane (i32.mul (i32.mul (local.get $H) (local.get $W)) (i32.const ${E})))`);
    const zero = (from: string, to: string): string[] =>
      gather
        ? forLoop(
            "$ow",
            from,
            to,
            [`(${T}.store (i32.add (local.get $cols) (i32.shl (local.get $ow) (i32.const ${E === 8 ? 3 : 2}))) (${T}.const 0))`],
            "          ",
          )
        : [];
    const cell = `(i32.add (local.get $cols) (i32.shl (local.get $ow) (i32.const ${E === 8 ? 3 : 2})))`;
    const move = gather
      ? `(${T}.store ${cell} (${T}.load (local.get $s)))`
      : `(${T}.store (local.get $s) (${T}.add (${T}.load (local.get $s)) (${T}.load ${cell})))`;
    const perRow = [
      "(local.set $ih (i32.add (i32.sub (i32.mul (local.get $oh) (local.get $sh)) (local.get $pt)) (i32.mul (local.get $i) (local.get $dh))))",
      // ih < 0 or ih ≥ H, one unsigned comparison
      "(if (i32.ge_u (local.get $ih) (local.get $H))",
      "  (then",
      ...zero("(i32.const 0)", "(local.get $OW)").map((l) => `  ${l}`),
      "  )",
      "  (else",
      ...zero("(i32.const 0)", "(local.get $lo)").map((l) => `  ${l}`),
      `    (local.set $s (i32.add (local.get $xc) (i32.mul (i32.add (i32.add (i32.mul (local.get $ih) (local.get $W)) (i32.mul (local.get $lo) (local.get $sw))) (local.get $d)) (i32.const ${E}))))`,
      ...forLoop(
        "$ow",
        "(local.get $lo)",
        "(local.get $hi)",
        [`  ${move}`, "  (local.set $s (i32.add (local.get $s) (local.get $swb)))"],
        "    ",
      ),
      ...zero("(local.get $hi)", "(local.get $OW)").map((l) => `  ${l}`),
      "  ))",
      `(local.set $cols (i32.add (local.get $cols) (i32.mul (local.get $OW) (i32.const ${E}))))`,
    ];
    const perJ = [
      // d = j·dw − pl: input column of output column 0; valid output columns are [lo, hi)
      "(local.set $d (i32.sub (i32.mul (local.get $j) (local.get $dw)) (local.get $pl)))",
      "(local.set $lo (if (result i32) (i32.ge_s (local.get $d) (i32.const 0)) (then (i32.const 0))",
      "  (else (i32.div_s (i32.sub (i32.sub (local.get $sw) (i32.const 1)) (local.get $d)) (local.get $sw)))))",
      "(local.set $hi (if (result i32) (i32.lt_s (i32.sub (i32.sub (local.get $W) (i32.const 1)) (local.get $d)) (i32.const 0)) (then (i32.const 0))",
      "  (else (i32.add (i32.div_s (i32.sub (i32.sub (local.get $W) (i32.const 1)) (local.get $d)) (local.get $sw)) (i32.const 1)))))",
      "(if (i32.gt_s (local.get $lo) (local.get $OW)) (then (local.set $lo (local.get $OW))))",
      "(if (i32.gt_s (local.get $hi) (local.get $OW)) (then (local.set $hi (local.get $OW))))",
      "(if (i32.lt_s (local.get $hi) (local.get $lo)) (then (local.set $hi (local.get $lo))))",
      ...forLoop("$oh", "(i32.const 0)", "(local.get $OH)", perRow, ""),
    ];
    const perI = forLoop("$j", "(i32.const 0)", "(local.get $KW)", perJ, "");
    const perC = [
      "(local.set $xc (i32.add (local.get $x) (i32.mul (local.get $c) (local.get $plane))))",
      ...forLoop("$i", "(i32.const 0)", "(local.get $KH)", perI, ""),
    ];
    L.push(...forLoop("$c", "(i32.const 0)", "(local.get $C)", perC, "").map((l) => `    ${l}`));
    L.push("  )");
  }
  return L.join("\n");
}

/** The whole module's text. `suffix` distinguishes extra variants (used by experiments). */
export function gemmWat(variants: readonly GemmVariant[] = DEFAULT_VARIANTS, suffixes?: readonly string[]): string {
  const parts = ["(module", '  (import "env" "memory" (memory 1 65536 shared))'];
  variants.forEach((v, i) => {
    parts.push(gemmFunctions(v, suffixes?.[i] ?? ""));
  });
  if (suffixes === undefined) parts.push(convFunctions("f64"), convFunctions("f32"));
  parts.push(")");
  return `${parts.join("\n")}\n`;
}
