import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { builtFile } from "../build-output.js";
import { ROOT } from "../deploy/helpers.js";

/** `adjoint/client` resolves through package.json "exports" (a self-reference, as a dependant would). */
describe("the adjoint/client export", () => {
  it("imports by package name from the build", async () => {
    builtFile("dist/src/client/index.js");
    const script = 'const m = await import("adjoint/client"); console.log(typeof m.connect, typeof m.AdjointClientError);';
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT });
    expect(stdout.trim()).toBe("function function");
  });
});
