#!/usr/bin/env python3
"""Minimise the n-dimensional Rosenbrock function with scipy's L-BFGS-B, values and gradients from
adjoint's gRPC API over one bidirectional DifferentiateStream. Debian packages only: python3-grpcio,
python3-protobuf, python3-numpy, python3-scipy, and protobuf-compiler, protobuf-compiler-grpc and
libprotobuf-dev to generate the stubs from the repository's proto/ (done here on first use).

    /usr/bin/python3 examples/python/grpc_client.py --target localhost:50051 --n 10

The function is registered once (RegisterFunction) and the stream names it by id; later messages carry
only the point. A replica that has not seen the id ends the stream with NOT_FOUND: the client opens a
new stream whose first message carries the definition, and goes on. With two --target the stream goes
to the second while registration went to the first, as behind a load balancer: that case on purpose.
"""

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ beside the examples
from rosenbrock import EXPRESSION, report, solve  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_MESSAGE = 64 * 1024 * 1024


def load_stubs(stubs_dir, proto_dir=REPO / "proto"):
    """Generates adjoint_pb2 and adjoint_pb2_grpc with protoc and grpc_python_plugin (once) and imports them."""
    stubs_dir = Path(stubs_dir)
    if not (stubs_dir / "adjoint" / "v1" / "adjoint_pb2_grpc.py").exists():
        plugin = shutil.which("grpc_python_plugin")
        if shutil.which("protoc") is None or plugin is None:
            raise SystemExit("protoc and grpc_python_plugin are needed: apt-get install protobuf-compiler protobuf-compiler-grpc libprotobuf-dev")
        stubs_dir.mkdir(parents=True, exist_ok=True)
        # google/protobuf/struct.proto: Debian's protoc finds it under /usr/include (libprotobuf-dev).
        includes = [f"-I{proto_dir}"] + (["-I/usr/include"] if Path("/usr/include/google/protobuf/struct.proto").exists() else [])
        subprocess.run(
            ["protoc", *includes, f"--python_out={stubs_dir}", f"--grpc_python_out={stubs_dir}",
             f"--plugin=protoc-gen-grpc_python={plugin}", "adjoint/v1/adjoint.proto"],
            check=True,
        )
    sys.path.insert(0, str(stubs_dir))
    from adjoint.v1 import adjoint_pb2, adjoint_pb2_grpc

    return adjoint_pb2, adjoint_pb2_grpc


class AdjointStream:
    """One DifferentiateStream used as a function: each call sends a point and waits for its answer."""

    def __init__(self, pb, pb_grpc, register_target, stream_target, n):
        options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
        self.pb = pb
        self.n = n
        self.channels = {t: grpc.insecure_channel(t, options=options) for t in (register_target, stream_target)}
        self.definition = pb.Function(expression=EXPRESSION, inputs=[pb.InputSpec(name="x", shape=[n])])
        register = pb_grpc.AdjointServiceStub(self.channels[register_target]).RegisterFunction
        self.id = register(pb.RegisterFunctionRequest(function=self.definition), timeout=30).id
        self.stub = pb_grpc.AdjointServiceStub(self.channels[stream_target])
        self.resent = 0
        self.streams = 0
        self._open(pb.Function(id=self.id))

    def _open(self, function):
        """A new stream; its first message will name `function` (later ones carry only the point)."""
        if getattr(self, "requests", None) is not None:
            self.requests.put(None)  # ends the old stream's request iterator
        self.requests = queue.Queue()
        self.responses = self.stub.DifferentiateStream(iter(self.requests.get, None))
        self.pending = function
        self.streams += 1

    def value_and_gradient(self, x, attempts=3):
        pb = self.pb
        raw = np.ascontiguousarray(x, dtype="<f8").tobytes()
        request = pb.DifferentiateRequest(point=pb.Point(tensors={"x": pb.Tensor(shape=[self.n], dtype=pb.ELEMENT_TYPE_FLOAT64, raw=raw)}))
        if self.pending is not None:
            request.function.CopyFrom(self.pending)
            self.pending = None
        self.requests.put(request)
        try:
            answer = next(self.responses)
        except grpc.RpcError as e:
            if attempts <= 1 or e.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                raise
            # NOT_FOUND: this replica has not seen the id. UNAVAILABLE: it is shutting down or gone.
            # Either way, a new stream that carries the definition (the same id on every replica).
            if e.code() == grpc.StatusCode.NOT_FOUND:
                self.resent += 1
            self._open(self.definition)
            return self.value_and_gradient(x, attempts - 1)
        if answer.id != self.id:
            raise RuntimeError(f"the stream computed {answer.id}, not {self.id}")
        result = answer.result
        value = result.outputs["f"].values[0]
        gradient = np.frombuffer(result.gradient["x"].raw, dtype="<f8").copy()
        return value, gradient

    def close(self):
        self.requests.put(None)
        for _ in self.responses:  # the server ends the stream once the requests end
            pass
        for channel in self.channels.values():
            channel.close()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", help="host:port of a replica (give two to register on one, stream to the other)")
    parser.add_argument("--n", type=int, default=10, help="dimension (default 10)")
    parser.add_argument("--stubs-dir", help="where the generated stubs are or go (default: a temporary folder)")
    args = parser.parse_args(argv)
    targets = args.target or ["localhost:50051"]

    stubs_dir = args.stubs_dir or tempfile.mkdtemp(prefix="adjoint-stubs-")
    pb, pb_grpc = load_stubs(stubs_dir)
    client = AdjointStream(pb, pb_grpc, targets[0], targets[-1], args.n)
    result = solve(client.value_and_gradient, args.n)
    client.close()
    return report("grpc", result, n=args.n, id=client.id, replicas=len(set(targets)), resent=client.resent, streams=client.streams)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
