#!/usr/bin/env python3
"""Minimise the n-dimensional Rosenbrock function with scipy's L-BFGS-B, values and gradients from
adjoint's REST API through the `adjoint` package (clients/python). Debian packages only:
python3-numpy, python3-scipy (and python3-grpcio, python3-protobuf, which the package imports for gRPC).

    /usr/bin/python3 examples/python/rest_client.py --url http://localhost:8080 --n 10

The function is registered once and then named by its id, a content hash. Any replica can compute it,
but one that has not seen the id answers 404 not_found: the client then sends the definition, which
also teaches that replica the id. With several --url the calls go round the replicas, as a load
balancer would, and so meet that case on purpose.
"""

import argparse
import itertools
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the examples
import _path  # noqa: E402,F401
from adjoint import Client  # noqa: E402
from rosenbrock import definition, report, solve  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="base URL of a replica (repeat for several)")
    parser.add_argument("--n", type=int, default=10, help="dimension (default 10)")
    args = parser.parse_args(argv)
    urls = [u.rstrip("/") for u in (args.url or ["http://localhost:8080"])]

    clients = [Client(u) for u in urls]
    info = clients[0].register(definition(args.n))
    # One objective per replica, all naming the function by id; each call goes to the next replica.
    objectives = itertools.cycle([c.objective(info) for c in clients])
    result = solve(lambda x: next(objectives).fun(x), args.n)
    resent = sum(c.resent for c in clients)
    for c in clients:
        c.close()
    return report("rest", result, n=args.n, id=info.id, replicas=len(urls), resent=resent)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
