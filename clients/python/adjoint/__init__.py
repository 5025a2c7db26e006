"""Python client of the adjoint service: exact derivatives over HTTP or gRPC, numpy in and out.

    from adjoint import Client
    with Client("http://localhost:8080") as c:          # or "grpc://localhost:50051"
        r = c.differentiate("x1*exp(-0.5*(x1^2+x2^2))", {"x1": 2.0, "x2": 0.5})
        r.value, r.gradient["x1"]
"""

from ._client import Client, FunctionLike
from ._errors import AdjointError
from ._types import FunctionInfo, MinimizeResult, Progress, Result
from .objective import Objective

__all__ = ["AdjointError", "Client", "FunctionInfo", "FunctionLike", "MinimizeResult", "Objective", "Progress", "Result"]
__version__ = "0.1.0"
