import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAMILIES } from "../../bench/abuse/families.js";
import { Prober } from "../../bench/abuse/probe.js";
import { problems, runFamily, startService } from "../../bench/abuse/session.js";
import { residentBytes, type Started, stopProcess } from "../../bench/load/process.js";
import { builtFile } from "../build-output.js";

/**
 * Every attack family of bench/abuse/families.ts, shrunk, against the built service in a process of
 * its own: each must be refused or answered within budget with no 500, INTERNAL or stack trace, the
 * cheap worked example must keep being answered exactly and within 1 s meanwhile, and the process must
 * be alive, exact over both transports, and back near its starting memory afterwards.
 * `npm run bench:abuse` runs the same families at full size and reports the figures.
 */
const SCALE = 0.05;

describe("hostile requests cannot take the service down", () => {
  let service: Started;
  let prober: Prober;
  let startRss = 0;

  beforeAll(async () => {
    builtFile("dist/src/main.js");
    service = await startService({ ADJOINT_WORKERS: "2", ADJOINT_BODY_TIMEOUT_MS: "1000" });
    prober = new Prober({ httpPort: service.httpPort, grpcPort: service.grpcPort });
    await new Promise((r) => setTimeout(r, 500));
    startRss = residentBytes(service.child.pid as number) ?? 0;
  });

  afterAll(async () => {
    await prober?.stop();
    if (service) await stopProcess(service.child);
  });

  for (const family of FAMILIES) {
    it(`${family.name}: ${family.what}`, async () => {
      const report = await runFamily(service, family, SCALE, () => prober.read(), startRss, 20_000);
      expect(problems(report, startRss)).toEqual([]);
      expect(report.probe.sent).toBeGreaterThan(0);
    }, 120_000);
  }
});
