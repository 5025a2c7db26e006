#!/usr/bin/env node
// The command-line entry. `npm ci` builds dist/ (the prepare script), so this only forwards to it.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write("adjoint: the build output is missing; run `npm run build` first\n");
  process.exit(2);
}
const { runCli } = await import(main.href);
process.exitCode = await runCli(process.argv.slice(2));
