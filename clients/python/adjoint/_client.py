"""The client: one object for either transport, with retries, deadlines and re-sent definitions."""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar, Union

import numpy as np

from ._errors import AdjointError
from ._tensor import ArrayLike
from ._types import FunctionInfo, MinimizeResult, Progress, Result

T = TypeVar("T")
FunctionLike = Union[str, dict, FunctionInfo]
# Keyword options of differentiate as Python names → the request's field names.
OPTION_NAMES = {"trace": "trace", "allow_non_finite": "allowNonFinite", "precision": "precision", "order": "order",
                "method": "method", "sparse": "sparse"}


class Client:
    """`Client("http://host:8080")` (REST) or `Client("grpc://host:50051")` (gRPC). Every call takes
    `timeout` (seconds, the whole call's deadline including retries; default the client's). Refusals
    with a retry-after (a full queue: HTTP 503, RESOURCE_EXHAUSTED) and unreachable or draining
    replicas are retried with exponential back-off, at most `retries` times and never past the
    deadline; a function named by id that a replica has not seen (not_found) is sent again with its
    definition, when this client registered it. Every failure is an AdjointError."""

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 5, backoff: float = 0.05, max_backoff: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https"):
            from ._http import HttpTransport

            self.transport: Any = HttpTransport(url)
        elif parts.scheme == "grpc":
            from ._grpc import GrpcTransport  # grpcio only when asked for

            self.transport = GrpcTransport(parts.netloc)
        else:
            raise ValueError(f"{url}: the scheme must be http, https or grpc")
        self.url = url
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.definitions: Dict[str, dict] = {}
        self.infos: Dict[str, FunctionInfo] = {}
        self.resent = 0  # definitions sent again after not_found
        self.retried = 0  # attempts repeated after a retryable refusal
        self._lock = threading.Lock()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # ---- functions ------------------------------------------------------------------------------

    def function(self, function: FunctionLike) -> dict:
        """The request's `function` field: an expression string, a REST function dict, or a
        FunctionInfo (sent by id)."""
        if isinstance(function, str):
            return {"expression": function}
        if isinstance(function, FunctionInfo):
            if function.definition is not None:
                self.definitions.setdefault(function.id, function.definition)
            return {"id": function.id}
        return dict(function)

    def register(self, function: FunctionLike, *, timeout: Optional[float] = None) -> FunctionInfo:
        """Registers a function (its id is a content hash: the same on every replica) and answers its
        description; later calls given the FunctionInfo send only the id."""
        definition = self.function(function)
        if "id" in definition and definition["id"] in self.definitions:
            definition = self.definitions[definition["id"]]
        info = self._call(lambda body, t: self.transport.register(body["function"], t), {"function": definition}, timeout)
        info.definition = definition if "id" not in definition else self.definitions.get(info.id)
        with self._lock:
            if info.definition is not None:
                self.definitions[info.id] = info.definition
            self.infos[info.id] = info
        return info

    def describe(self, function: FunctionLike, *, timeout: Optional[float] = None) -> FunctionInfo:
        """A function's inputs and outputs (a definition is registered to learn them)."""
        f = self.function(function)
        if "id" in f and f["id"] in self.infos:
            return self.infos[f["id"]]
        if "id" in f and f["id"] not in self.definitions:
            return self._call(lambda body, t: self.transport.describe(f["id"], t), {"function": f}, timeout)
        return self.register(function, timeout=timeout)

    def ops(self, *, timeout: Optional[float] = None) -> dict:
        """The capability manifest (GET /v1/ops, ListOps)."""
        return self._call(lambda body, t: self.transport.ops(t), {}, timeout)

    # ---- evaluation -----------------------------------------------------------------------------

    def differentiate(self, function: FunctionLike, point: Mapping[str, ArrayLike], *, mode: str = "reverse",
                      wrt: Optional[Sequence[str]] = None, tangent: Optional[Mapping[str, ArrayLike]] = None,
                      cotangent: Optional[Mapping[str, ArrayLike]] = None, initialize: Optional[int] = None,
                      timeout: Optional[float] = None, **options: Any) -> Result:
        """One point: `point` maps input names to numbers or numpy arrays. Options: trace,
        allow_non_finite, precision ("float32"), order, method (jacobian: "forward"/"reverse"), sparse."""
        body = self._body(function, mode, wrt, tangent, cotangent, initialize, options)
        body["point"] = dict(point)
        return self._call(self.transport.differentiate, body, timeout)

    def differentiate_points(self, function: FunctionLike, points: Sequence[Mapping[str, ArrayLike]], *, mode: str = "reverse",
                             wrt: Optional[Sequence[str]] = None, timeout: Optional[float] = None, **options: Any) -> List[Result]:
        """A batch as a list of points: one Result per point, in order."""
        body = self._body(function, mode, wrt, options.pop("tangent", None), options.pop("cotangent", None), options.pop("initialize", None), options)
        body["points"] = [dict(p) for p in points]
        return self._call(self.transport.differentiate, body, timeout)

    def batch(self, function: FunctionLike, columns: Union[np.ndarray, Mapping[str, ArrayLike]], *, mode: str = "reverse",
              wrt: Optional[Sequence[str]] = None, timeout: Optional[float] = None, **options: Any) -> Result:
        """A batch by columns, answered as one Result whose arrays have the point as first axis.
        `columns` maps each input to its values for every point, or is a 2-D array [points, k]: the k
        scalar inputs in declared order, or the one vector input of length k."""
        if not isinstance(columns, Mapping):
            columns = self._columns(function, np.asarray(columns), timeout)
        body = self._body(function, mode, wrt, options.pop("tangent", None), options.pop("cotangent", None), options.pop("initialize", None), options)
        body["columns"] = dict(columns)
        return self._call(self.transport.differentiate, body, timeout)

    def _columns(self, function: FunctionLike, array: np.ndarray, timeout: Optional[float]) -> Dict[str, np.ndarray]:
        if array.ndim != 2:
            raise ValueError(f"a batch array is [points, k]; this one has shape {array.shape}")
        inputs = self.describe(function, timeout=timeout).inputs
        shapes = [tuple(i.get("shape", [])) for i in inputs]
        if len(inputs) == 1 and shapes[0] == (array.shape[1],):
            return {inputs[0]["name"]: array}
        if all(s == () for s in shapes) and len(inputs) == array.shape[1]:
            return {i["name"]: array[:, k] for k, i in enumerate(inputs)}
        raise ValueError(f"a [points, {array.shape[1]}] array fits neither {len(inputs)} scalar inputs nor one vector input; pass a dict of columns")

    def _body(self, function: FunctionLike, mode: str, wrt: Optional[Sequence[str]], tangent: Any, cotangent: Any,
              initialize: Optional[int], options: Mapping[str, Any]) -> dict:
        body: Dict[str, Any] = {"function": self.function(function), "mode": mode}
        if wrt is not None:
            body["wrt"] = list(wrt)
        if tangent is not None:
            body["tangent"] = dict(tangent)
        if cotangent is not None:
            body["cotangent"] = dict(cotangent)
        if initialize is not None:
            body["initialize"] = {"seed": int(initialize)}
        for key, v in options.items():
            if key not in OPTION_NAMES:
                raise TypeError(f"unknown option {key!r}; known: {', '.join(OPTION_NAMES)}")
            body[OPTION_NAMES[key]] = v
        return body

    # ---- optimisation ---------------------------------------------------------------------------

    def objective(self, function: FunctionLike, *, wrt: Union[str, Sequence[str], None] = None,
                  fixed: Optional[Mapping[str, ArrayLike]] = None, timeout: Optional[float] = None) -> "Objective":
        """`fun(x) -> (value, gradient)` for scipy.optimize.minimize(jac=True), and `hessp(x, p)`. A
        definition is registered first; a FunctionInfo (registered through any client) is used as is."""
        from .objective import Objective

        if isinstance(function, FunctionInfo):
            self.function(function)  # remembers its definition, to send again on not_found
            info = function
        else:
            info = self.register(function, timeout=timeout)
        return Objective(self, info, wrt, fixed or {}, timeout)

    def minimize(self, function: FunctionLike, start: Mapping[str, ArrayLike], *, method: str = "lbfgs",
                 wrt: Optional[Sequence[str]] = None, bounds: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 options: Optional[Mapping[str, Any]] = None, progress: Optional[Callable[[Progress], None]] = None,
                 progress_every: Optional[int] = None, initialize: Optional[int] = None,
                 timeout: Optional[float] = None) -> MinimizeResult:
        """The whole minimisation on the server (POST /v1/minimize, gRPC Minimize); `progress` is called
        with each Progress record as it arrives. `options` take the REST names (maxIterations, gtol,
        ftol, memory, learningRate, beta1, beta2, epsilon, timeLimitMs); `bounds` maps a variable to
        {"lower": ..., "upper": ...}."""
        body: Dict[str, Any] = {"function": self.function(function), "start": dict(start), "method": method}
        if wrt is not None:
            body["wrt"] = list(wrt)
        if bounds:
            body["bounds"] = {k: dict(b) for k, b in bounds.items()}
        if options:
            body["options"] = dict(options)
        if progress_every is not None:
            body["progressEvery"] = int(progress_every)
        if initialize is not None:
            body["initialize"] = {"seed": int(initialize)}
        return self._call(lambda b, t: self.transport.minimize(b, progress, t), body, timeout)

    # ---- the retry loop -------------------------------------------------------------------------

    def _call(self, op: Callable[[dict, float], T], body: dict, timeout: Optional[float]) -> T:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        attempt, resent = 0, False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AdjointError("deadline_exceeded", "the call's deadline passed while retrying")
            try:
                return op(body, left)
            except AdjointError as e:
                fid = body.get("function", {}).get("id")
                if e.kind == "not_found" and not resent and fid in self.definitions:
                    # This replica has not seen the id: the definition has the same id everywhere.
                    body, resent = {**body, "function": self.definitions[fid]}, True
                    self.resent += 1
                    continue
                if not e.retryable or attempt >= self.retries:
                    raise
                wait = max(e.retry_after or 0.0, min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0))
                if time.monotonic() + wait >= deadline:
                    raise
                time.sleep(wait)
                attempt += 1
                self.retried += 1
