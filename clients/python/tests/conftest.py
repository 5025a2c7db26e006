"""A real adjoint service for the tests: two processes (as two replicas behind a load balancer) started
from the repository's build (dist/src/main.js; `npm run build` first), on free ports. ADJOINT_NODE
chooses the node binary (default: node on PATH)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.dont_write_bytecode = True
try:
    import adjoint  # noqa: F401  (the installed package, when it is)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Replica:
    def __init__(self) -> None:
        main = REPO / "dist" / "src" / "main.js"
        if not main.exists():
            pytest.exit(f"{main} is missing: run `npm run build` first", returncode=2)
        node = os.environ.get("ADJOINT_NODE") or shutil.which("node") or "node"
        env = {**os.environ, "ADJOINT_HOST": "127.0.0.1", "ADJOINT_HTTP_PORT": "0", "ADJOINT_GRPC_PORT": "0",
               "ADJOINT_WORKERS": "1", "ADJOINT_LOG_LEVEL": "info"}
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([node, str(main)], env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        ports = self._wait_serving()
        self.http = f"http://127.0.0.1:{ports['httpPort']}"
        self.grpc = f"grpc://127.0.0.1:{ports['grpcPort']}"
        # Keep draining the log so the pipe never fills.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def _wait_serving(self) -> Dict[str, int]:
        timer = threading.Timer(60, self.process.kill)
        timer.start()
        try:
            for line in self.process.stdout:
                if "adjoint is serving" in line:
                    return json.loads(line)
        finally:
            timer.cancel()
        self.stderr.seek(0)
        raise RuntimeError(f"the service exited before serving: {self.stderr.read()[-2000:]}")

    def url(self, transport: str) -> str:
        return self.http if transport == "http" else self.grpc

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def replicas() -> Iterator[List[Replica]]:
    started = [Replica(), Replica()]
    yield started
    for r in started:
        r.stop()


@pytest.fixture(params=["http", "grpc"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(replicas: List[Replica], transport: str) -> Iterator["object"]:
    from adjoint import Client

    with Client(replicas[0].url(transport), timeout=60) as c:
        yield c
