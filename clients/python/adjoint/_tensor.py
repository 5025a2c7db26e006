"""Tensors between numpy and the two wire forms: JSON (base64 little-endian) and protobuf (raw bytes)."""

from __future__ import annotations

import base64
from typing import Any, Mapping, Union

import numpy as np

ArrayLike = Union[float, int, np.ndarray, list]
# Strings JSON uses for non-finite numbers (with allowNonFinite).
NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
DTYPES = {"float64": "<f8", "float32": "<f4", "int32": "<i4", "int64": "<i8"}


def as_array(value: ArrayLike) -> np.ndarray:
    """Float arrays stay float32 or float64, integer arrays (class labels) int32 or int64, which both
    transports carry as such and the service reads as exact numbers; anything else becomes float64."""
    a = np.asarray(value)
    if a.dtype in (np.float32, np.float64, np.int32, np.int64):
        return a
    if np.issubdtype(a.dtype, np.signedinteger) or (np.issubdtype(a.dtype, np.unsignedinteger) and a.dtype.itemsize < 8):
        return a.astype(np.int64)
    return a.astype(np.float64)


def _wire_dtype(a: np.ndarray) -> str:
    return {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32", np.dtype(np.int64): "int64"}.get(a.dtype, "float64")


def scalar_or_array(a: np.ndarray) -> Union[np.float64, np.ndarray]:
    """A 0-d result becomes a numpy float (a float subclass that keeps -0.0); others stay arrays."""
    return np.float64(a.reshape(())) if a.ndim == 0 else a


# ---- JSON -----------------------------------------------------------------------------------------


def to_json(value: ArrayLike) -> Any:
    """A tensor as REST takes it: scalars as numbers, anything else as base64 bytes."""
    a = as_array(value)
    if a.ndim == 0:
        v = float(a)
        if np.isfinite(v):
            return v
        return "NaN" if np.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    dtype = _wire_dtype(a)
    raw = np.ascontiguousarray(a, dtype=DTYPES[dtype]).tobytes()
    return {"shape": list(a.shape), "dtype": dtype, "base64": base64.b64encode(raw).decode("ascii")}


def json_named(values: Mapping[str, ArrayLike]) -> dict:
    return {name: to_json(v) for name, v in values.items()}


INTEGER_KEYS = ("shape", "indptr", "indices")


def _numeric_list(v: list) -> bool:
    return bool(v) and all((isinstance(x, (int, float)) and not isinstance(x, bool)) or (isinstance(x, str) and x in NON_FINITE) for x in v)


def _is_tensor(v: dict) -> bool:
    return "shape" in v and ("base64" in v or "data" in v) and "format" not in v


def from_json(v: Any) -> Any:
    """Decodes an answer: tensors ({shape, data} or {shape, dtype, base64}) to arrays, numbers to
    numpy floats, non-finite strings to floats; other dicts and lists recursively."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return np.float64(v)
    if isinstance(v, str):
        return np.float64(NON_FINITE[v]) if v in NON_FINITE else v
    if isinstance(v, list):
        if _numeric_list(v):
            return np.array([NON_FINITE[x] if isinstance(x, str) else x for x in v], dtype=np.float64)
        return [from_json(x) for x in v]
    if isinstance(v, dict):
        if _is_tensor(v):
            shape = tuple(v["shape"])
            if "base64" in v:
                a = np.frombuffer(base64.b64decode(v["base64"]), dtype=DTYPES[v.get("dtype", "float64")])
            else:
                a = np.array([NON_FINITE.get(x, x) if isinstance(x, str) else x for x in v["data"]], dtype=np.float64)
            return scalar_or_array(a.reshape(shape))
        # CSR structure and shapes are integers, kept as such.
        return {k: (list(x) if k == "shape" else np.array(x, dtype=np.int64)) if k in INTEGER_KEYS and isinstance(x, list) else from_json(x) for k, x in v.items()}
    return v


# ---- protobuf -------------------------------------------------------------------------------------


def to_pb(pb: Any, value: ArrayLike) -> Any:
    """A Tensor message with raw little-endian bytes (the fast form), whatever the shape."""
    a = as_array(value)
    dtype = _wire_dtype(a)
    raw = np.ascontiguousarray(a, dtype=DTYPES[dtype]).tobytes()
    return pb.Tensor(shape=list(a.shape), dtype=getattr(pb, "ELEMENT_TYPE_" + dtype.upper()), raw=raw)


def pb_point(pb: Any, values: Mapping[str, ArrayLike]) -> Any:
    return pb.Point(tensors={name: to_pb(pb, v) for name, v in values.items()})


def from_pb(pb: Any, t: Any) -> Union[np.float64, np.ndarray]:
    shape = tuple(t.shape)
    if t.raw:
        names = {pb.ELEMENT_TYPE_FLOAT32: "<f4"}
        for name, code in (("ELEMENT_TYPE_INT32", "<i4"), ("ELEMENT_TYPE_INT64", "<i8")):
            if hasattr(pb, name):  # element types newer stubs know
                names[getattr(pb, name)] = code
        a = np.frombuffer(t.raw, dtype=names.get(t.dtype, "<f8"))
    else:
        a = np.array(t.values, dtype=np.float64)
    return scalar_or_array(a.reshape(shape))


def pb_named(pb: Any, m: Mapping[str, Any]) -> dict:
    return {name: from_pb(pb, t) for name, t in m.items()}
