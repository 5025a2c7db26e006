"""Conventions both transports share (docs/service.md, "Conventions"), through the client."""

from __future__ import annotations

import math

import numpy as np
from adjoint import Client

MODEL = {
    "input": [1, 3, 3],
    "layers": [{"type": "avg_pool2d", "kernel": 2, "padding": 1, "countIncludePad": True, "ceilMode": True}, {"type": "flatten"},
               {"type": "dense", "units": 3, "name": "fc"}],
    "loss": "softmax_cross_entropy",
}


def test_integer_labels_and_the_typed_model(client: Client) -> None:
    x = np.arange(18, dtype=np.float64).reshape(2, 1, 3, 3) / 10
    params = {"fc.weight": np.linspace(-0.5, 0.5, 12).reshape(4, 3), "fc.bias": np.array([0.1, 0.0, -0.1])}
    as_int = client.differentiate({"model": MODEL}, {"x": x, "y": np.array([2, 0], dtype=np.int64), **params})
    as_int32 = client.differentiate({"model": MODEL}, {"x": x, "y": np.array([2, 0], dtype=np.int32), **params})
    as_float = client.differentiate({"model": MODEL}, {"x": x, "y": np.array([2.0, 0.0]), **params})
    assert float(as_int.value) == float(as_float.value) == float(as_int32.value)
    np.testing.assert_array_equal(as_int.gradient["fc.weight"], as_float.gradient["fc.weight"])


def test_negative_zero_keeps_its_sign(client: Client) -> None:
    r = client.differentiate("-x*y", {"x": 0.0, "y": 1.0})
    assert float(r.value) == 0.0 and math.copysign(1.0, float(r.value)) == -1.0
    assert math.copysign(1.0, float(r.gradient["y"])) == -1.0
