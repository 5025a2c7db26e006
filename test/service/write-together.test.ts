import { connect } from "node:net";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTogether } from "../../src/http/write-together.js";
import { startTestServer, type TestServer } from "./helpers.js";

/**
 * HTTP answers held to the end of the event loop's turn and written together (src/http/write-together.ts):
 * when they leave, that none is lost or reordered, and that one that cannot be written is still answered.
 */
describe("the rule, on a bare fastify app", () => {
  let app: FastifyInstance;
  let base: string;
  const seen: boolean[][] = [];
  beforeAll(async () => {
    app = Fastify({ logger: false });
    writeTogether(app);
    app.get("/now", (_request, reply) => {
      reply.type("text/plain").send("sent");
      const written = [reply.raw.headersSent];
      seen.push(written);
      process.nextTick(() => written.push(reply.raw.headersSent));
      queueMicrotask(() => written.push(reply.raw.headersSent));
      // Queued after the send, so it runs after the answers of the turn are written.
      setImmediate(() => written.push(reply.raw.headersSent));
    });
    // fastify refuses such a payload only when it writes it: with the write held, after the handler.
    app.get("/unwritable", (_request, reply) => {
      reply.type("text/plain").send({ not: "text" });
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await app?.close();
  });

  it("writes an answer once the turn that sent it is over, not at once", async () => {
    const res = await fetch(`${base}/now`);
    expect(await res.text()).toBe("sent");
    // Not in the handler, not after its ticks and microtasks; written before the next immediate.
    expect(seen.at(-1)).toEqual([false, false, false, true]);
  });

  it("answers an answer that cannot be written as fastify does, and the others of its turn as usual", async () => {
    const [bad, ...good] = await Promise.all([fetch(`${base}/unwritable`), ...Array.from({ length: 5 }, () => fetch(`${base}/now`))]);
    expect(bad.status).toBe(500);
    expect(((await bad.json()) as { code: string }).code).toBe("FST_ERR_REP_INVALID_PAYLOAD_TYPE");
    for (const res of good) expect(await res.text()).toBe("sent");
  });
});

describe("through the service", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.close();
  });

  /** The answers of requests pipelined on one connection, read until `count` bodies have come. */
  function pipelined(requests: string[], count: number): Promise<{ status: number; body: Record<string, unknown> }[]> {
    return new Promise((resolve, reject) => {
      const socket = connect(s.app.httpPort, "127.0.0.1");
      let text = "";
      const answers: { status: number; body: Record<string, unknown> }[] = [];
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => {
        text += chunk;
        for (;;) {
          const head = text.indexOf("\r\n\r\n");
          if (head < 0) break;
          const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1]);
          if (text.length < head + 4 + length) break;
          answers.push({ status: Number(text.slice(9, 12)), body: JSON.parse(text.slice(head + 4, head + 4 + length)) });
          text = text.slice(head + 4 + length);
        }
        if (answers.length === count) {
          socket.end();
          resolve(answers);
        }
      });
      socket.on("error", reject);
      // All in one write: the service reads them in one turn and holds every answer to its end.
      socket.write(requests.join(""));
    });
  }
  const post = (body: string) =>
    `POST /v1/differentiate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const at = (x1: number, x2: number) => post(JSON.stringify({ function: { expression: "x1*exp(-0.5*(x1^2+x2^2))" }, point: { x1, x2 } }));

  it("answers requests pipelined on one connection whole and in order, a refused one among them", async () => {
    const points = [
      [2, 0.5],
      [1, -1],
      [0.25, 3],
      [-1.5, 0.75],
    ];
    const requests = points.map(([x1, x2]) => at(x1, x2));
    requests.splice(2, 0, post('{"function": {"expression": "x1*"}, "point": {}}'));
    const answers = await pipelined(requests, requests.length);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 400, 200, 200]);
    expect(answers[2].body).toMatchObject({ kind: "invalid_argument", field: "function.expression" });
    const good = answers.filter((a) => a.status === 200);
    points.forEach(([x1, x2], i) => {
      const e = Math.exp(-0.5 * (x1 * x1 + x2 * x2));
      const { value, gradient } = good[i].body as { value: number; gradient: { x1: number; x2: number } };
      expect(value).toBeCloseTo(x1 * e, 15);
      expect(gradient.x1).toBeCloseTo((1 - x1 * x1) * e, 15);
      expect(gradient.x2).toBeCloseTo(-x1 * x2 * e, 15);
    });
  });
});
