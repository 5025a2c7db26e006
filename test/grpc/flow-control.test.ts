import { type ClientHttp2Session, connect } from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/service/config.js";
import { startTestServer, type TestServer } from "../service/helpers.js";

/**
 * The gRPC server's HTTP/2 flow-control window (src/grpc/flow-control.ts), as a client sees it: the
 * per-call window in the server's SETTINGS and the connection's window after its WINDOW_UPDATE. These
 * fail if a grpc-js upgrade stops taking the window, which would leave large messages at 64 KiB a turn.
 */

function settle<T>(what: string, read: () => T | undefined, ms = 2000): Promise<T> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const look = () => {
      const v = read();
      if (v !== undefined) resolve(v);
      else if (Date.now() > until) reject(new Error(`${what}: not seen within ${ms} ms`));
      else setTimeout(look, 10);
    };
    look();
  });
}

/** The windows a fresh HTTP/2 connection to `port` may send into, once the server has said them. */
async function windows(port: number, expectedConnection: number): Promise<{ call: number; connection: number }> {
  const session: ClientHttp2Session = connect(`http://127.0.0.1:${port}`);
  try {
    await new Promise<void>((resolve, reject) => {
      session.once("remoteSettings", () => resolve());
      session.once("error", reject);
    });
    const call = session.remoteSettings.initialWindowSize as number;
    // The connection's window arrives as a WINDOW_UPDATE just after the settings.
    const connection = await settle("the connection's window", () => {
      const w = session.state.remoteWindowSize;
      return w === expectedConnection ? w : undefined;
    }).catch(() => session.state.remoteWindowSize as number);
    return { call, connection };
  } finally {
    session.close();
  }
}

describe("gRPC flow-control window", () => {
  let defaults: TestServer;
  let narrow: TestServer;
  beforeAll(async () => {
    defaults = await startTestServer();
    narrow = await startTestServer({ grpcFlowWindow: 1_000_000 });
  });
  afterAll(async () => {
    await defaults?.close();
    await narrow?.close();
  });

  it("is 2 MiB per call and per connection by default, where HTTP/2 starts at 65,535 bytes", async () => {
    expect(await windows(defaults.app.grpcPort, 2 * 1024 * 1024)).toEqual({ call: 2 * 1024 * 1024, connection: 2 * 1024 * 1024 });
  });

  it("follows the setting", async () => {
    expect(await windows(narrow.app.grpcPort, 1_000_000)).toEqual({ call: 1_000_000, connection: 1_000_000 });
  });

  it("refuses a window HTTP/2 cannot have, naming the setting", () => {
    expect(() => loadConfig([], { ADJOINT_GRPC_FLOW_WINDOW: "1000" })).toThrow(
      new ConfigError('ADJOINT_GRPC_FLOW_WINDOW: expected an integer ≥ 65535, got "1000"'),
    );
    expect(() => loadConfig(["--grpc-flow-window", String(2 ** 31)])).toThrow(
      new ConfigError('--grpc-flow-window: expected an integer ≤ 2147483647, got "2147483648"'),
    );
  });
});
