import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The absolute path of a file of the build, for the tests that run the built command line or service
 * in a process of their own. `npm test` builds first and a bare `vitest run` does not; without this
 * check such a test fails on a symptom (an exit code, an empty stdout, a child that never serves)
 * rather than on its cause.
 */
export function builtFile(path: string): string {
  const file = fileURLToPath(new URL(`../${path}`, import.meta.url));
  if (!existsSync(file)) {
    throw new Error(`${path} is missing: this test runs the build output, so run \`npm run build\` first (\`npm test\` does)`);
  }
  return file;
}
