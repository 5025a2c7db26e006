import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/service/config.js";

/** The settings' bounds (src/service/config.ts): a value out of range stops start-up with the setting's name, not a stack trace later. */
describe("settings' bounds", () => {
  it("refuses a port no socket can have, naming the setting, rather than failing to listen", () => {
    expect(() => loadConfig([], { ADJOINT_HTTP_PORT: "70000" })).toThrow(
      new ConfigError('ADJOINT_HTTP_PORT: expected an integer ≤ 65535, got "70000"'),
    );
    expect(() => loadConfig(["--grpc-port", "65536"])).toThrow(new ConfigError('--grpc-port: expected an integer ≤ 65535, got "65536"'));
    expect(loadConfig(["--grpc-port", "65535"], {}).grpcPort).toBe(65_535);
  });
});
