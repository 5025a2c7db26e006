"""Retries, back-off and deadlines against stand-in servers that refuse on purpose (the real service
refuses only under load, which a test cannot produce reliably)."""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, List

import grpc
import pytest
from adjoint import AdjointError, Client
from adjoint.v1 import adjoint_pb2 as pb
from adjoint.v1 import adjoint_pb2_grpc as pb_grpc

ANSWER = {"value": 2.0, "gradient": {"x": 4.0}, "id": "fn_1", "mode": "reverse"}


class Busy(BaseHTTPRequestHandler):
    """Answers 503 + Retry-After to the first `refusals` requests, then the answer (or sleeps)."""

    refusals = 2
    seen: List[float] = []
    sleep = 0.0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["content-length"]))
        Busy.seen.append(time.monotonic())
        if len(Busy.seen) <= Busy.refusals:
            body, status, headers = {"kind": "resource_exhausted", "detail": "queue full", "status": 503}, 503, {"retry-after": "0.2"}
        else:
            time.sleep(Busy.sleep)
            body, status, headers = ANSWER, 200, {}
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in {"content-type": "application/json", "content-length": str(len(data)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy() -> Iterator[str]:
    Busy.seen, Busy.refusals, Busy.sleep = [], 2, 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_503_is_retried_after_retry_after(busy: str) -> None:
    with Client(busy) as c:
        r = c.differentiate("x^2", {"x": 2.0})
    assert float(r.value) == 2.0 and c.retried == 2
    gaps = [b - a for a, b in zip(Busy.seen, Busy.seen[1:])]
    assert all(g >= 0.19 for g in gaps), gaps


def test_retries_stop_at_the_limit(busy: str) -> None:
    Busy.refusals = 100
    with Client(busy, retries=1) as c, pytest.raises(AdjointError) as e:
        c.differentiate("x^2", {"x": 2.0})
    assert e.value.kind == "resource_exhausted" and e.value.status == 503 and len(Busy.seen) == 2


def test_deadline_bounds_the_call(busy: str) -> None:
    Busy.refusals, Busy.sleep = 0, 2.0
    started = time.monotonic()
    with Client(busy) as c, pytest.raises(AdjointError) as e:
        c.differentiate("x^2", {"x": 2.0}, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert e.value.kind in ("deadline_exceeded", "unavailable")


class Refusing(pb_grpc.AdjointServiceServicer):
    calls = 0

    def Differentiate(self, request: pb.DifferentiateRequest, context: grpc.ServicerContext) -> pb.DifferentiateResponse:  # noqa: N802
        Refusing.calls += 1
        if Refusing.calls == 1:
            context.set_trailing_metadata((("retry-after", "0.1"), ("adjoint-kind", "resource_exhausted")))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
        if Refusing.calls == 2:
            context.set_trailing_metadata((("adjoint-kind", "invalid_argument"), ("adjoint-field", "point.x")))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "point.x is NaN")
        return pb.DifferentiateResponse(id="fn_1", mode="reverse", result=pb.Result(outputs={"f": pb.Tensor(values=[2.0])}))


def test_grpc_resource_exhausted_is_retried_and_errors_carry_the_field() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_AdjointServiceServicer_to_server(Refusing(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with Client(f"grpc://127.0.0.1:{port}") as c:
            with pytest.raises(AdjointError) as e:
                c.differentiate("x^2", {"x": 2.0})
            assert c.retried == 1 and e.value.kind == "invalid_argument" and e.value.field == "point.x"
            assert float(c.differentiate("x^2", {"x": 2.0}).value) == 2.0
    finally:
        server.stop(0)
