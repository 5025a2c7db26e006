// Bundles the playground page (web/) into dist/page/ with esbuild: one script, one stylesheet and the
// HTML, so the service serves everything the page needs and the page fetches nothing from elsewhere.
// `npm run build` runs it after tsc.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/page`;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { page: `${root}web/main.ts` },
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  sourcemap: true,
  outdir: out,
  // The page is self-contained: a stray import of a Node module is a mistake, not something to polyfill.
  platform: "browser",
  logLevel: "warning",
});
for (const file of ["index.html", "favicon.svg"]) copyFileSync(`${root}web/${file}`, `${out}/${file}`);
