import pino, { type Logger } from "pino";
import { describe, expect, it, vi } from "vitest";
import { lazyRequestLogger } from "../../src/http/request-logger.js";
import { LogCapture } from "./helpers.js";

/** The factory as fastify calls it: on the server, with the parent logger, the request id's binding and options. */
function requestLogger(parent: Logger, options = {}) {
  const child = vi.spyOn(parent, "child");
  const log = lazyRequestLogger.call(undefined as never, parent, { reqId: "r-1" }, options, undefined as never);
  return { log, child };
}

const settled = () => new Promise((done) => setImmediate(done));

describe("each request's logger, made on its first line", () => {
  it("makes no pino child for a request that writes nothing, or only lines the level leaves out", async () => {
    const logs = new LogCapture();
    const { log, child } = requestLogger(pino({ level: "warn" }, logs));
    log.info({ a: 1 }, "not written");
    log.debug("nor this");
    expect(child).not.toHaveBeenCalled();
    expect(log.level).toBe("warn");
    await settled();
    expect(logs.lines).toEqual([]);
  });

  it("writes a line with the request id and the parent's bindings, through one child made once", async () => {
    const logs = new LogCapture();
    const { log, child } = requestLogger(pino({ level: "info", base: { service: "adjoint" } }, logs));
    log.info({ kind: "invalid_argument" }, "request refused");
    log.error({ err: new Error("boom") }, "internal error");
    log.warn("plain %s", "words");
    expect(child).toHaveBeenCalledTimes(1);
    await settled();
    expect(logs.lines.map((l) => [l.level, l.reqId, l.service, l.msg])).toEqual([
      [30, "r-1", "adjoint", "request refused"],
      [50, "r-1", "adjoint", "internal error"],
      [40, "r-1", "adjoint", "plain words"],
    ]);
    expect((logs.lines[1].err as { message: string }).message).toBe("boom");
  });

  it("honours a route's own level, and a level set on the request's logger", async () => {
    const logs = new LogCapture();
    const { log } = requestLogger(pino({ level: "warn" }, logs), { level: "debug" });
    expect(log.level).toBe("debug");
    log.debug("route level");
    log.level = "error";
    log.warn("now left out");
    log.error("written");
    await settled();
    expect(logs.lines.map((l) => l.msg)).toEqual(["route level", "written"]);
  });

  it("gives children of its own that carry the request id", async () => {
    const logs = new LogCapture();
    const { log } = requestLogger(pino({ level: "info" }, logs));
    log.child({ part: "body" }).info("nested");
    await settled();
    expect(logs.lines.map((l) => [l.reqId, l.part, l.msg])).toEqual([["r-1", "body", "nested"]]);
  });
});
