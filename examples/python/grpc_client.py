#!/usr/bin/env python3
"""Minimise the n-dimensional Rosenbrock function with scipy's L-BFGS-B, values and gradients from
adjoint's gRPC API through the `adjoint` package (clients/python: grpcio with the stubs it commits,
generated from proto/ by protoc and grpc_python_plugin). Debian packages only: python3-grpcio,
python3-protobuf, python3-numpy, python3-scipy.

    /usr/bin/python3 examples/python/grpc_client.py --target localhost:50051 --n 10

The function is registered once (RegisterFunction) and later calls name it by id, tensors as raw
float64 bytes. With two --target the calls go to the second while registration went to the first, as
behind a load balancer: the second answers NOT_FOUND once and the client sends the definition.
"""

import argparse
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the examples
import _path  # noqa: E402,F401
from adjoint import Client  # noqa: E402
from rosenbrock import definition, report, solve  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", help="host:port of a replica (give two to register on one, call the other)")
    parser.add_argument("--n", type=int, default=10, help="dimension (default 10)")
    args = parser.parse_args(argv)
    targets = args.target or ["localhost:50051"]

    with Client(f"grpc://{targets[0]}") as first, Client(f"grpc://{targets[-1]}") as last:
        info = first.register(definition(args.n))
        objective = last.objective(info)
        result = solve(objective.fun, args.n)
        return report("grpc", result, n=args.n, id=info.id, replicas=len(set(targets)), resent=last.resent)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
