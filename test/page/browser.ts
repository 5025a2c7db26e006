import { existsSync } from "node:fs";
import { pino } from "pino";
import { type Browser, chromium, type Page } from "playwright-core";
import { type RunningAdjoint, startAdjoint } from "../../src/main.js";
import { loadConfig } from "../../src/service/config.js";
import { builtFile } from "../build-output.js";

/**
 * Debian's chromium (CI installs it: .ci/run), or CHROMIUM_PATH; playwright never downloads a browser
 * here. Undefined when there is none, and the browser tests skip saying so.
 */
export const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => p !== undefined && p !== "" && existsSync(p),
);

if (CHROMIUM === undefined) {
  console.warn("test/page: SKIPPED, no chromium found (install Debian's: apt-get install -y chromium, or set CHROMIUM_PATH)");
}

export const WORKED_LINK = `/?expr=${encodeURIComponent("x1*exp(-0.5*(x1^2+x2^2))")}&at=x1=2,x2=0.5`;

export interface PageRig {
  readonly base: string;
  readonly browser: Browser;
  /** Every URL any page asked for, to prove nothing came from elsewhere. */
  readonly requests: string[];
  /** Console errors and page errors (a Content-Security-Policy refusal is one). */
  readonly errors: string[];
  open(path: string, viewport?: { width: number; height: number }): Promise<Page>;
  close(): Promise<void>;
}

/** The service on a free port, serving the built page, and a headless Chromium. */
export async function startRig(): Promise<PageRig> {
  builtFile("dist/page/index.html");
  const config = loadConfig([], {}, { host: "127.0.0.1", httpPort: 0, grpcPort: 0, workers: 1, logLevel: "warn" });
  const app: RunningAdjoint = await startAdjoint(config, pino({ level: "warn" }));
  const base = `http://127.0.0.1:${app.httpPort}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  const requests: string[] = [];
  const errors: string[] = [];
  return {
    base,
    browser,
    requests,
    errors,
    async open(path, viewport = { width: 1400, height: 1000 }) {
      const page = await browser.newPage({ viewport });
      page.on("request", (r) => requests.push(r.url()));
      // An error answer (a 400 the page shows) is logged by Chromium too: failed loads are judged by their response instead.
      page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
      page.on(
        "response",
        (r) => r.status() >= 400 && !new URL(r.url()).pathname.startsWith("/v1/") && errors.push(`${r.status()} ${r.url()}`),
      );
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${base}${path}`);
      return page;
    },
    async close() {
      await browser.close();
      await app.shutdown();
    },
  };
}

/** Waits until the page has answered the evaluation it started (body[data-state=done]). */
export async function settled(page: Page): Promise<void> {
  await page.waitForSelector("body[data-state=done]", { timeout: 20_000 });
}
