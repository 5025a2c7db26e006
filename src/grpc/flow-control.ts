import type { Http2Server, ServerHttp2Session } from "node:http2";
import * as grpc from "@grpc/grpc-js";

/**
 * The HTTP/2 flow-control window a gRPC client may send ahead: per call and per connection.
 *
 * Node's default is 64 KiB, and grpc-js gives a server no option for it (`grpc-node.flow_control_window`
 * is a channel's). With 64 KiB, a 2 MB message (a training step's data) crosses loopback as some forty
 * round trips of DATA and WINDOW_UPDATE, each waking both ends: on the reference machine a grpc-js
 * method that computes nothing took 7–9 ms for the W3 step's bytes, 2.9 ms with a 2 MiB window, and no
 * less with 4 or 8 MiB. The window is also how fast a burst of large calls lands, since grpc-js reads
 * every message whole as it arrives: with 8 MiB, the abuse test's 300 concurrent W3 steps left the
 * service holding tens of MB more afterwards than with 2 MiB, the default.
 *
 * The window is set on grpc-js's own HTTP/2 options and servers, fields of its Server that are not
 * public API (grpc-js 1.x has had them throughout). Binding says whether it took, so that an upgrade
 * that moves them shows as a warning and a failing test, not as a silent return to 64 KiB.
 */
interface GrpcServerInternals {
  commonServerOptions?: { settings?: Record<string, unknown> };
  http2Servers?: Map<Http2Server, unknown>;
}

/** The window this repository's grpc-js clients give the server's answers (`grpc-node.flow_control_window`): the clients' own memory. */
export const CLIENT_FLOW_WINDOW = 8 * 1024 * 1024;

/**
 * Binds `server` (insecure) to `address` with a flow-control window of `bytes` for every call and
 * connection. `windowSet` is false when grpc-js no longer has the fields it is set on; the server is
 * bound and serves either way.
 */
export async function bindWithFlowWindow(
  server: grpc.Server,
  address: string,
  bytes: number,
): Promise<{ port: number; windowSet: boolean }> {
  const internals = server as unknown as GrpcServerInternals;
  // Every call's window (SETTINGS_INITIAL_WINDOW_SIZE): grpc-js makes its HTTP/2 servers from these options when it binds.
  const options = internals.commonServerOptions;
  const callWindow = typeof options === "object" && options !== null;
  if (callWindow) options.settings = { ...options.settings, initialWindowSize: bytes };
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  // Every new connection's window, once the HTTP/2 servers exist.
  const servers = internals.http2Servers;
  const connectionWindow = servers instanceof Map && servers.size > 0;
  if (connectionWindow) {
    for (const http2Server of servers.keys()) {
      http2Server.on("session", (session: ServerHttp2Session) => session.setLocalWindowSize(bytes));
    }
  }
  return { port, windowSet: callWindow && connectionWindow };
}
