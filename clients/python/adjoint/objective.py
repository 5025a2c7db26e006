"""A function as scipy.optimize wants it: a flat vector in, a float and a flat gradient out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._tensor import ArrayLike
from ._types import FunctionInfo

if TYPE_CHECKING:
    from ._client import Client


class Objective:
    """`fun(x) -> (value, gradient)` for `scipy.optimize.minimize(obj.fun, x0, jac=True)`, `hessp(x, p)`
    (exact Hessian-vector products, mode hvp) for Newton-CG and trust-krylov, and `value(x)`. The
    variables `wrt` (one name or several, concatenated in order; default: the one float input, or a
    model's parameters) are the flat vector x; `fixed` gives every other input (a model's x and y).
    The function is registered once and then sent by id."""

    def __init__(self, client: "Client", info: FunctionInfo, wrt: Union[str, Sequence[str], None],
                 fixed: Mapping[str, ArrayLike], timeout: Optional[float]) -> None:
        self.client, self.info, self.fixed, self.timeout = client, info, dict(fixed), timeout
        self.wrt: List[str] = [wrt] if isinstance(wrt, str) else list(wrt) if wrt is not None else default_wrt(info, self.fixed)
        self.shapes = [info.input_shape(n) for n in self.wrt]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.evaluations = 0
        self.hvps = 0

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def split(self, x: ArrayLike) -> Dict[str, np.ndarray]:
        """The flat vector as the named inputs."""
        flat = np.asarray(x, dtype=np.float64).ravel()
        if flat.size != self.size:
            raise ValueError(f"x has {flat.size} elements; {', '.join(self.wrt)} take {self.size}")
        out, at = {}, 0
        for name, shape, n in zip(self.wrt, self.shapes, self.sizes):
            out[name] = flat[at:at + n].reshape(shape)
            at += n
        return out

    def join(self, named: Mapping[str, Any]) -> np.ndarray:
        """Named arrays (a gradient) as one flat vector in the order of `wrt`."""
        return np.concatenate([np.asarray(named[n], dtype=np.float64).ravel() for n in self.wrt])

    def fun(self, x: ArrayLike) -> Tuple[float, np.ndarray]:
        r = self.client.differentiate(self.info, {**self.fixed, **self.split(x)}, mode="reverse", wrt=self.wrt, timeout=self.timeout)
        self.evaluations += 1
        return float(r.value), self.join(r.fields["gradient"])

    __call__ = fun

    def value(self, x: ArrayLike) -> float:
        r = self.client.differentiate(self.info, {**self.fixed, **self.split(x)}, mode="value", timeout=self.timeout)
        self.evaluations += 1
        return float(r.value)

    def hessp(self, x: ArrayLike, p: ArrayLike) -> np.ndarray:
        r = self.client.differentiate(self.info, {**self.fixed, **self.split(x)}, mode="hvp", wrt=self.wrt,
                                      tangent=self.split(p), timeout=self.timeout)
        self.hvps += 1
        return self.join(r.fields["hvp"])


def default_wrt(info: FunctionInfo, fixed: Mapping[str, Any]) -> List[str]:
    """The float inputs not given in `fixed` (for a model with x and y fixed: its parameters)."""
    names = [n for n in info.float_inputs if n not in fixed]
    if not names:
        raise ValueError(f"{info.id}: every float input is fixed; name the variables with wrt")
    return names
