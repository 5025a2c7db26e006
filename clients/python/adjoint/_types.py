"""What the client answers: plain dataclasses of numpy arrays, the same from either transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

Array = Union[np.float64, np.ndarray]


@dataclass
class Result:
    """One answer (or, for a batch by columns, every point's answer with the point as first axis).
    `value` is the output of a function with one (named `f` for an expression, `loss` for a model);
    `outputs` has every output by name when there are several, as the REST answer does; `fields` every other result field decoded (gradient, jvp, vjp, hvp, jacobian,
    hessian, derivative, divergence, laplacian, check, trace, ...), also reachable as `result["hvp"]`."""

    id: str
    mode: str
    value: Optional[Array] = None
    outputs: Dict[str, Array] = field(default_factory=dict)
    fields: Dict[str, Any] = field(default_factory=dict)
    parameters: Optional[Dict[str, Array]] = None

    @property
    def gradient(self) -> Optional[Dict[str, Array]]:
        return self.fields.get("gradient")

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


@dataclass
class FunctionInfo:
    """A function the service knows, by content-hash id, with its declared inputs and outputs. Pass it
    as `function` to any call: the id is sent, and the definition again to a replica that lacks it."""

    id: str
    inputs: List[Dict[str, Any]]
    outputs: List[Dict[str, Any]]
    node_count: int = 0
    op_count: int = 0
    definition: Optional[dict] = None

    def input_shape(self, name: str) -> Tuple[int, ...]:
        for i in self.inputs:
            if i["name"] == name:
                return tuple(int(n) for n in i.get("shape", []))
        raise KeyError(f"{self.id} has no input {name!r}")

    @property
    def float_inputs(self) -> List[str]:
        return [i["name"] for i in self.inputs if i.get("dtype", "float") == "float"]


@dataclass
class Progress:
    """A progress record of a server-side minimisation (`point` only over gRPC)."""

    iteration: int
    value: float
    gradient_norm: float
    evaluations: int
    elapsed_ms: float
    point: Optional[Dict[str, Array]] = None


@dataclass
class MinimizeResult:
    point: Dict[str, Array]
    value: float
    gradient_norm: float
    iterations: int
    evaluations: int
    status: str
    message: str = ""
    id: str = ""
    method: str = ""
    hvps: int = 0
    history: List[Progress] = field(default_factory=list)

    @property
    def x(self) -> Array:
        """The single variable's value (the usual case: one vector input)."""
        if len(self.point) != 1:
            raise ValueError(f"several variables: {sorted(self.point)}; read .point")
        return next(iter(self.point.values()))

    @property
    def success(self) -> bool:
        return self.status == "converged"
