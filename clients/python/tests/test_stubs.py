"""The committed stubs are what protoc and grpc_python_plugin make of proto/ today."""

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("protoc") is None or shutil.which("grpc_python_plugin") is None,
                    reason="protoc / grpc_python_plugin missing (apt-get install protobuf-compiler protobuf-compiler-grpc)")
def test_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run([str(HERE / "generate.sh"), str(tmp_path)], check=True)
    for name in ("adjoint_pb2.py", "adjoint_pb2_grpc.py"):
        fresh, committed = tmp_path / "adjoint" / "v1" / name, HERE / "adjoint" / "v1" / name
        assert filecmp.cmp(fresh, committed, shallow=False), f"{committed} is stale: run clients/python/generate.sh"
