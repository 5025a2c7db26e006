"""The n-dimensional Rosenbrock function as adjoint computes it, and the scipy driver both clients share.

f(x) = sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 has its minimum 0 at x = (1, ..., 1). adjoint gets
it as one tensor expression with a declared input x of shape [n] and answers f and its exact gradient.
"""

import json

import numpy as np
from scipy.optimize import minimize

EXPRESSION = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)"
# Converged: every coordinate within this of 1.
TOLERANCE = 1e-4


def definition(n):
    """The function as the REST API writes it (the gRPC client builds the same as a Function message)."""
    return {"expression": EXPRESSION, "inputs": [{"name": "x", "shape": [n]}]}


def start(n):
    """The classic starting point (-1.2, 1, -1.2, 1, ...)."""
    return np.array([-1.2 if i % 2 == 0 else 1.0 for i in range(n)])


def solve(value_and_gradient, n):
    """L-BFGS-B with values and gradients from the service (jac=True: one call gives both)."""
    return minimize(
        value_and_gradient,
        start(n),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
    )


def report(transport, result, **extra):
    """Prints one JSON line; returns the exit status (0 when the minimum at all ones was reached)."""
    error = float(np.max(np.abs(result.x - 1)))
    converged = bool(error < TOLERANCE)
    summary = {
        "transport": transport,
        "converged": converged,
        "max_error": error,
        "value": float(result.fun),
        "iterations": int(result.nit),
        "evaluations": int(result.nfev),
        "message": str(result.message),
        **extra,
        "x": [float(v) for v in result.x],
    }
    print(json.dumps(summary))
    return 0 if converged else 1
