import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";

/**
 * The playground page (web/, bundled by scripts/build-page.mjs into dist/page/) and its assets. Every
 * byte the page uses comes from here, so the Content-Security-Policy can allow 'self' only: no inline
 * scripts or styles, no other origin, nothing framed.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

/** From the build (dist/src/http) the bundle sits at dist/page; when this file runs from src/http (tests), at ../../dist/page. */
function pageDir(): string | undefined {
  const candidates = [new URL("../../page/", import.meta.url), new URL("../../dist/page/", import.meta.url)];
  return candidates.map((u) => fileURLToPath(u)).find((dir) => existsSync(join(dir, "index.html")));
}

/** The bundle is a handful of small files: read once, served from memory, and only these names. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type !== undefined) assets.set(name, { body: readFileSync(join(dir, name)), type });
  }
  return assets;
}

function send(reply: FastifyReply, asset: Asset): FastifyReply {
  return reply
    .header("content-security-policy", PAGE_CSP)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("cache-control", "no-cache")
    .type(asset.type)
    .send(asset.body);
}

/** GET / (the page) and GET /page/:file (its bundle). Without a build it says how to make one. */
export async function pageRoutes(app: FastifyInstance): Promise<void> {
  const dir = pageDir();
  const assets = dir === undefined ? new Map<string, Asset>() : loadAssets(dir);
  const missing = "the playground page is not built: run `npm run build`\n";
  app.get("/", async (_request, reply) => {
    const index = assets.get("index.html");
    return index === undefined ? reply.code(503).type("text/plain; charset=utf-8").send(missing) : send(reply, index);
  });
  app.get<{ Params: { file: string } }>("/page/:file", async (request, reply) => {
    const asset = request.params.file === "index.html" ? undefined : assets.get(request.params.file);
    if (asset === undefined) return reply.code(404).type("text/plain; charset=utf-8").send("no such file\n");
    return send(reply, asset);
  });
}
