import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SERVICE_NODE_FLAGS } from "../../bench/load/process.js";

const root = join(import.meta.dirname, "../..");

/** The service's command line is spelled in three places; the benchmarks must measure what users run. */
describe("the service's node command line", () => {
  const npmStart = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts.start as string;
  const recipe = readFileSync(join(root, "docker/recipe.sh"), "utf8");
  const recipeStart = recipe.slice(recipe.indexOf("  start)"), recipe.indexOf("  health)"));

  it("npm start, the image and the load benchmarks give node the same flags", () => {
    expect(SERVICE_NODE_FLAGS.length).toBeGreaterThan(0);
    expect(npmStart).toContain(`node ${SERVICE_NODE_FLAGS.join(" ")} dist/src/main.js`);
    expect(recipeStart).toContain(`exec node ${SERVICE_NODE_FLAGS.join(" ")} dist/src/main.js`);
  });

  it("and the same malloc settings", () => {
    for (const setting of ["MALLOC_ARENA_MAX:-2", "MALLOC_MMAP_THRESHOLD_:-131072"]) {
      expect(npmStart).toContain(setting);
      expect(recipeStart).toContain(setting);
    }
  });
});
