import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { assembleGemm, generatedModuleSource } from "../../../src/tensor/kernels/wasm/assemble.js";

const dir = new URL("../../../src/tensor/kernels/wasm/", import.meta.url);

describe("the committed WebAssembly kernel", () => {
  it("is what gemm-wat.ts assembles to (rerun assemble.ts after changing the generator)", async () => {
    const { text, bytes } = await assembleGemm();
    expect(readFileSync(new URL("gemm.wat", dir), "utf8")).toBe(text);
    expect(readFileSync(new URL("gemm-wasm.generated.ts", dir), "utf8")).toBe(generatedModuleSource(bytes));
  });
});
