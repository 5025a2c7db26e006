#!/bin/sh
# The one place that says how the image is built and started. docker/Dockerfile runs these steps, and
# test/deploy/recipe.test.ts runs the same steps in a clean copy of the repository (there is no Docker
# engine on the development machine), so the two cannot drift apart.
#
#   docker/recipe.sh build         (build stage) install every dependency, compile TypeScript to dist/
#   docker/recipe.sh runtime-deps  (run stage) install the production dependencies only
#   docker/recipe.sh start         (run stage) exec the service: node becomes PID 1 and gets the signals
#   docker/recipe.sh health        (HEALTHCHECK) exit 0 when GET /healthz answers 200
#
# Configuration is by environment variables only (ADJOINT_HTTP_PORT, ADJOINT_GRPC_PORT, ADJOINT_WORKERS,
# ADJOINT_LOG_LEVEL, ... : `node dist/src/main.js --help` lists them all).
set -eu

case "${1:-}" in
  build)
    # No dependency needs its install script (package-lock.json marks three: @bufbuild/buf and core-js,
    # dev tools not used here, and protobufjs's version notice); --ignore-scripts also keeps npm ci
    # from running prepare, so the build runs once, here.
    npm ci --ignore-scripts --no-audit --no-fund
    npm run build
    ;;
  runtime-deps)
    # --ignore-scripts skips prepare (the build needs the dev dependencies; it was done in the build stage).
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund
    ;;
  start)
    # glibc's malloc, told to give memory back: two arenas rather than one per thread, and blocks over
    # 128 KiB always mapped apart (its default raises that bound to the largest block freed, after
    # which large request buffers fragment the heap). Without these a burst of large requests leaves
    # hundreds of MB resident for nothing (docs/service.md).
    export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
    # A large initial old generation for the main thread: megabyte request and answer buffers otherwise
    # set off a full collection every few large calls (workers keep V8's own sizing, runtime/pool.ts).
    exec node --initial-old-space-size=128 dist/src/main.js
    ;;
  health)
    exec node -e '
      const port = process.env.ADJOINT_HTTP_PORT || "8080";
      const req = require("node:http").get({ host: "127.0.0.1", port, path: "/healthz", timeout: 2000 }, (res) => {
        res.resume();
        process.exit(res.statusCode === 200 ? 0 : 1);
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", () => process.exit(1));
    '
    ;;
  *)
    echo "usage: docker/recipe.sh build | runtime-deps | start | health" >&2
    exit 2
    ;;
esac
