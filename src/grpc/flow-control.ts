import type { Http2Server, ServerHttp2Session } from "node:http2";
import type * as grpc from "@grpc/grpc-js";

/**
 * The HTTP/2 flow-control window a gRPC client may send ahead: per call and per connection.
 *
 * Node's default is 64 KiB, and grpc-js gives a server no option for it (`grpc-node.flow_control_window`
 * is a channel's). With 64 KiB, a 2 MB message (a training step's data) crosses loopback as some forty
 * round trips of DATA and WINDOW_UPDATE, each waking both ends: on the reference machine a grpc-js
 * method that computes nothing took 7–9 ms for the W3 step's bytes, 2.9 ms with a 2 MiB window, and no
 * less with 4 or 8 MiB. The default stays at 2 MiB: a wider one let a burst of large calls land at once,
 * and the abuse test's 300 concurrent W3 steps left the service holding tens of MB more afterwards.
 * A wider window adds no memory a client could pin: grpc-js reads every message whole into memory as it
 * arrives, up to its size limit, whatever the window; the window only sets how soon the client may send.
 *
 * The window is set on grpc-js's own HTTP/2 options and servers, fields of its Server that are not
 * public API (grpc-js 1.x has had them throughout); each step says whether it took, so that an upgrade
 * that moves them shows as a warning and a failing test, not as a silent return to 64 KiB.
 */
interface GrpcServerInternals {
  commonServerOptions?: { settings?: Record<string, unknown> };
  http2Servers?: Map<Http2Server, unknown>;
}

/** Before binding: every call's window (SETTINGS_INITIAL_WINDOW_SIZE). False when grpc-js no longer has the field. */
export function setCallWindow(server: grpc.Server, bytes: number): boolean {
  const options = (server as unknown as GrpcServerInternals).commonServerOptions;
  if (typeof options !== "object" || options === null) return false;
  options.settings = { ...options.settings, initialWindowSize: bytes };
  return true;
}

/** After binding: every new connection's window. False when grpc-js no longer has its servers where expected. */
export function setConnectionWindow(server: grpc.Server, bytes: number): boolean {
  const servers = (server as unknown as GrpcServerInternals).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  for (const http2Server of servers.keys()) {
    http2Server.on("session", (session: ServerHttp2Session) => session.setLocalWindowSize(bytes));
  }
  return true;
}
