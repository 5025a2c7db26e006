#!/usr/bin/env python3
"""Minimise the n-dimensional Rosenbrock function on the server: one request, the whole L-BFGS-B loop
next to the compiled function, progress streamed back, through the `adjoint` package:

    /usr/bin/python3 examples/python/minimize_client.py --url http://localhost:8080 --n 100      # REST + SSE
    /usr/bin/python3 examples/python/minimize_client.py --target localhost:50051 --n 100         # gRPC

REST: POST /v1/minimize with `Accept: text/event-stream`; gRPC: the server-streaming Minimize, whose
messages each carry the point reached, so a deadline (--timeout) shorter than the run still leaves the
best point so far (status "deadline"). Prints one JSON line as the other clients do.
"""

import argparse
import sys
import time
from types import SimpleNamespace

sys.dont_write_bytecode = True  # no __pycache__ beside the examples
import _path  # noqa: E402,F401
from adjoint import Client  # noqa: E402
from rosenbrock import definition, report, start  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="REST base URL (SSE progress)")
    parser.add_argument("--target", help="gRPC host:port (streaming progress)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--method", default="lbfgs", choices=["lbfgs", "newton-cg", "adam"])
    parser.add_argument("--progress-every", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300, help="the call's deadline, seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args()
    if (args.url is None) == (args.target is None):
        raise SystemExit("give exactly one of --url and --target")

    def progress(p):
        if not args.quiet:
            print(f"progress: iteration {p.iteration} value {p.value:.6g} |g| {p.gradient_norm:.3g}", file=sys.stderr)

    started = time.perf_counter()
    with Client(args.url.rstrip("/") if args.url else f"grpc://{args.target}") as client:
        r = client.minimize(definition(args.n), {"x": start(args.n)}, method=args.method, progress=progress,
                            progress_every=args.progress_every, timeout=args.timeout,
                            options={"gtol": 1e-10, "ftol": 1e-15, "maxIterations": 2000})
    seconds = time.perf_counter() - started
    result = SimpleNamespace(x=r.x, fun=r.value, nit=r.iterations, nfev=r.evaluations, message=r.message)
    return report("rest-minimize" if args.url else "grpc-minimize", result, status=r.status, seconds=seconds)


if __name__ == "__main__":
    sys.exit(main())
