import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { assembleGemm, generatedModuleSource } from "../../../src/tensor/kernels/wasm/assemble.js";

const dir = new URL("../../../src/tensor/kernels/wasm/", import.meta.url);

describe("the committed WebAssembly kernels", () => {
  it("are what gemm-wat.ts assembles to, SIMD128 and relaxed SIMD (rerun assemble.ts after changing the generator)", async () => {
    const simd = await assembleGemm("simd128");
    const relaxed = await assembleGemm("relaxed-simd");
    expect(readFileSync(new URL("gemm.wat", dir), "utf8")).toBe(simd.text);
    expect(readFileSync(new URL("gemm-relaxed.wat", dir), "utf8")).toBe(relaxed.text);
    expect(readFileSync(new URL("gemm-wasm.generated.ts", dir), "utf8")).toBe(generatedModuleSource(simd.bytes, relaxed.bytes));
  });

  it("only the relaxed module uses relaxed SIMD, in its micro-kernels' multiply-add", async () => {
    const simd = await assembleGemm("simd128");
    const relaxed = await assembleGemm("relaxed-simd");
    expect(simd.text).not.toContain("relaxed");
    expect(relaxed.text).toContain("f64x2.relaxed_madd");
    expect(relaxed.text).toContain("f32x4.relaxed_madd");
    expect(relaxed.text.replace(/\(f(64x2|32x4)\.relaxed_madd [^\n]*/g, "")).not.toContain("relaxed");
  });
});
