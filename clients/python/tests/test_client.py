"""The client against a real service, over both transports (the `transport` fixture)."""

from __future__ import annotations

import numpy as np
import pytest
from adjoint import AdjointError, Client, Progress

ROSENBROCK = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)"


def rosenbrock(n: int) -> dict:
    return {"expression": ROSENBROCK, "inputs": [{"name": "x", "shape": [n]}]}


def start(n: int) -> np.ndarray:
    return np.array([-1.2 if i % 2 == 0 else 1.0 for i in range(n)])


def test_worked_example(client: Client) -> None:
    r = client.differentiate("x1*exp(-0.5*(x1^2+x2^2))", {"x1": 2.0, "x2": 0.5})
    assert r.value == pytest.approx(0.23886593653343924, rel=1e-15)
    assert r.gradient["x1"] == pytest.approx(-0.35829890480015886, rel=1e-15)
    assert r.id.startswith("fn_") and r.mode == "reverse"


def test_tensors_round_trip_as_numpy(client: Client) -> None:
    x = np.linspace(-1, 1, 1000)
    r = client.differentiate({"expression": "sum(x^3)", "inputs": [{"name": "x", "shape": [1000]}]}, {"x": x})
    assert isinstance(r.gradient["x"], np.ndarray) and r.gradient["x"].shape == (1000,)
    np.testing.assert_array_equal(r.gradient["x"], 3 * x**2)


def test_modes(client: Client) -> None:
    f = {"expressions": {"a": "x*y", "b": "x+y^2"}}
    j = client.differentiate(f, {"x": 2.0, "y": 3.0}, mode="jacobian")
    assert j.value is None and float(j.outputs["b"]) == 11.0
    assert float(j["jacobian"]["b"]["y"]) == 6.0
    h = client.differentiate("x^2*y", {"x": 2.0, "y": 3.0}, mode="hessian")
    assert float(h["hessian"]["x"]["y"]) == 4.0
    v = client.differentiate("x^2*y", {"x": 2.0, "y": 3.0}, mode="hvp", tangent={"x": 1.0, "y": 0.0})
    assert float(v["hvp"]["x"]) == 6.0 and float(v["hvp"]["y"]) == 4.0


def test_batches(client: Client) -> None:
    points = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, -6.0]])
    by_columns = client.batch("x1*x2", points)
    np.testing.assert_array_equal(by_columns.value, points[:, 0] * points[:, 1])
    np.testing.assert_array_equal(by_columns.gradient["x1"], points[:, 1])
    vectors = client.batch(rosenbrock(3), np.ones((4, 3)))
    np.testing.assert_array_equal(vectors.gradient["x"], np.zeros((4, 3)))
    rows = client.differentiate_points("x1*x2", [{"x1": 1.0, "x2": 2.0}, {"x1": 3.0, "x2": 4.0}])
    assert [float(r.value) for r in rows] == [2.0, 12.0]


def test_objective_drives_scipy(client: Client) -> None:
    scipy_optimize = pytest.importorskip("scipy.optimize")
    objective = client.objective(rosenbrock(6))
    found = scipy_optimize.minimize(objective.fun, start(6), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15})
    np.testing.assert_allclose(found.x, np.ones(6), atol=1e-4)
    newton = scipy_optimize.minimize(objective.fun, start(6), jac=True, hessp=objective.hessp, method="Newton-CG")
    np.testing.assert_allclose(newton.x, np.ones(6), atol=1e-4)
    assert objective.hvps > 0


def test_server_side_minimize_with_progress(client: Client) -> None:
    seen: list = []
    result = client.minimize(rosenbrock(10), {"x": start(10)}, options={"gtol": 1e-10, "ftol": 1e-15, "maxIterations": 2000},
                             progress=seen.append, progress_every=5)
    assert result.success, result.message
    np.testing.assert_allclose(result.x, np.ones(10), atol=1e-4)
    assert seen and all(isinstance(p, Progress) for p in seen)
    assert [p.iteration for p in seen] == sorted(p.iteration for p in seen)
    bounded = client.minimize(rosenbrock(4), {"x": start(4)}, bounds={"x": {"lower": -2.0, "upper": 0.8}})
    assert float(np.max(bounded.x)) <= 0.8


def test_errors_carry_kind_field_detail(client: Client) -> None:
    with pytest.raises(AdjointError) as e:
        client.differentiate("x1*", {"x1": 1.0})
    assert e.value.kind == "invalid_argument" and e.value.field == "function.expression"
    assert "column" in e.value.detail
    with pytest.raises(AdjointError) as missing:
        client.differentiate({"id": "fn_00000000000000000000000000000000"}, {"x": 1.0})
    assert missing.value.kind == "not_found"


def test_definition_resent_to_a_replica_that_lacks_the_id(replicas: list, transport: str) -> None:
    with Client(replicas[0].url(transport)) as first, Client(replicas[1].url(transport)) as second:
        f = rosenbrock(7 if transport == "http" else 9)  # a function neither replica has seen
        info = first.register(f)
        second.definitions[info.id] = f  # as a client that registered it elsewhere would know it
        r = second.differentiate(info, {"x": np.ones(info.input_shape("x"))})
        assert r.id == info.id and float(r.value) == 0.0
        assert second.resent == 1
        second.differentiate(info, {"x": np.ones(info.input_shape("x"))})
        assert second.resent == 1  # the replica learned the id


def test_describe_and_ops(client: Client) -> None:
    info = client.register(rosenbrock(5))
    assert info.input_shape("x") == (5,) and [o["name"] for o in info.outputs] == ["f"]
    assert client.describe(info).id == info.id
    ops = client.ops()
    assert any(op["name"] == "scatter_add" for op in ops["ops"])



def test_same_numbers(replicas: list) -> None:
    x = np.linspace(-2, 2, 50)
    f = {"expression": "sum(sin(x)*x^2)", "inputs": [{"name": "x", "shape": [50]}]}
    with Client(replicas[0].http) as h, Client(replicas[0].grpc) as g:
        a, b = h.differentiate(f, {"x": x}), g.differentiate(f, {"x": x})
        assert float(a.value) == float(b.value)
        np.testing.assert_array_equal(a.gradient["x"], b.gradient["x"])
