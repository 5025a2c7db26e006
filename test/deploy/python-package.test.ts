import { execFile, execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers.js";

/**
 * The Python package clients/python as a user gets it: installed offline into a venv created with
 * --system-site-packages (Debian's numpy, grpcio and protobuf; setuptools as the build backend, so
 * --no-build-isolation), then its pytest suite run from outside the source tree against real service
 * processes it starts itself (with this node, so the Node 24 CI pass covers it too). Runs with
 * `npm run test:interop` (CI), not with `npm test`.
 */
const ENABLED = process.env.ADJOINT_INTEROP === "1";
const PYTHON = "/usr/bin/python3";
const run = promisify(execFile);

describe.skipIf(!ENABLED)("the Python package (clients/python)", () => {
  let dir: string;
  let python: string;
  beforeAll(async () => {
    execFileSync(join(ROOT, "examples/python/install-debian-packages.sh"), { stdio: "inherit", timeout: 600_000 });
    dir = mkdtempSync(join(tmpdir(), "adjoint-py-"));
    // A copy: pip builds a local project in place, and the tree must stay clean.
    cpSync(join(ROOT, "clients/python"), join(dir, "src"), {
      recursive: true,
      filter: (p) => !/(__pycache__|\.egg-info|\/build)$/.test(p),
    });
    await run(PYTHON, ["-m", "venv", "--system-site-packages", join(dir, "venv")]);
    python = join(dir, "venv/bin/python");
    await run(python, ["-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", join(dir, "src")], { timeout: 120_000 });
  }, 720_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("installs offline into the venv", async () => {
    const { stdout } = await run(python, ["-c", "import adjoint; print(adjoint.__file__)"], { cwd: dir });
    expect(stdout.trim()).toBe(join(dir, "venv/lib", stdout.trim().split("/venv/lib/")[1]));
  });

  it("passes its pytest suite against real service processes (both transports, stubs fresh)", async () => {
    const tests = join(ROOT, "clients/python/tests");
    const env = { ...process.env, ADJOINT_NODE: process.execPath, PYTHONDONTWRITEBYTECODE: "1" };
    try {
      await run(python, ["-m", "pytest", "-q", "-p", "no:cacheprovider", tests], { cwd: dir, env, timeout: 300_000 });
    } catch (e) {
      const { stdout, stderr } = e as { stdout?: string; stderr?: string };
      throw new Error(`pytest failed:\n${stdout ?? ""}\n${stderr ?? ""}`);
    }
  }, 320_000);
});
