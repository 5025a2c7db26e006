import { afterEach, describe, expect, it, vi } from "vitest";
import { runCli } from "../../src/cli/main.js";

const WORKED = ["--expr", "x1*exp(-0.5*(x1^2+x2^2))", "--at", "x1=2,x2=0.5", "--trace", "--format", "table"];

/** Runs the command line in this process and returns what it printed and its exit code. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  const code = await runCli(args);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

afterEach(() => vi.restoreAllMocks());

describe("adjoint grad --trace --format table", () => {
  it("prints the reverse sweep as the seed's table, one aligned row per uᵢ", async () => {
    const { code, stdout } = await cli(["grad", ...WORKED]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^uᵢ = op\(…\)\s+value\s+ūᵢ$/);
    const rows = lines.slice(2, 10);
    expect(rows.map((l) => l.split(/\s{2,}/)[0])).toEqual([
      "x1 = input",
      "x2 = input",
      "v1 = square(x1)",
      "v2 = square(x2)",
      "v3 = add(v1, v2)",
      "v4 = mul(-0.5, v3)",
      "v5 = exp(v4)",
      "f = mul(x1, v5)",
    ]);
    expect(rows[0].split(/\s{2,}/)).toEqual(["x1 = input", "2", "-0.35829890480015886"]);
    expect(rows[7].split(/\s{2,}/)).toEqual(["f = mul(x1, v5)", "0.23886593653343924", "1", "← output f"]);
    // Aligned: every row's value column starts where the header's does.
    const at = lines[0].indexOf("value");
    for (const row of rows) expect(row.slice(at).split(" ")[0]).not.toBe("");
    expect(lines.at(-1)).toBe("seed: ū(f) = 1");
  });

  it("prints one tangent column per input in forward mode", async () => {
    const { code, stdout } = await cli(["grad", ...WORKED, "--mode", "forward"]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toContain("u̇ᵢ (∂/∂x1)");
    expect(lines[0]).toContain("u̇ᵢ (∂/∂x2)");
    expect(lines.at(-1)?.split(/\s{2,}/)).toEqual([
      "f = mul(x1, v5)",
      "0.23886593653343924",
      "-0.35829890480015886",
      "-0.11943296826671962",
      "← output f",
    ]);
  });

  it("keeps JSON the default and refuses a table without a trace", async () => {
    const json = await cli(["grad", ...WORKED.slice(0, 5)]);
    expect(JSON.parse(json.stdout).trace.rows).toHaveLength(8);
    const refused = await cli(["grad", ...WORKED.filter((a) => a !== "--trace")]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--format table prints the trace: add --trace");
  });
});
