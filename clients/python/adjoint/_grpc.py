"""gRPC transport over grpcio with the committed stubs: tensors as raw little-endian bytes."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import grpc
from google.protobuf import json_format, struct_pb2

from ._errors import GRPC_KINDS, AdjointError, parse_retry_after
from ._tensor import from_pb, pb_named, pb_point, to_pb
from ._types import FunctionInfo, MinimizeResult, Progress, Result
from .v1 import adjoint_pb2 as pb
from .v1 import adjoint_pb2_grpc as pb_grpc

MAX_MESSAGE = 64 * 1024 * 1024
TENSOR_MAPS = ("gradient", "jvp", "vjp", "hvp")
TENSORS = ("derivative", "divergence", "laplacian")
MESSAGES = {"check": "check", "trace": "trace", "non_finite": "nonFinite", "sparsity": "sparsity"}
OPTIONS = {"maxIterations": "max_iterations", "learningRate": "learning_rate", "timeLimitMs": "time_limit_ms"}


def pb_inputs(inputs: Any) -> list:
    specs = []
    for i in inputs or []:
        i = {"name": i} if isinstance(i, str) else i
        specs.append(pb.InputSpec(name=i["name"], shape=i.get("shape", []), dtype=i.get("dtype", "")))
    return specs


def pb_graph(g: dict) -> Any:
    nodes = []
    for n in g["nodes"]:
        node = pb.GraphNode(id=n["id"], op=n["op"])
        for a in n.get("args", []):
            node.args.append(pb.GraphArg(id=a) if isinstance(a, str) else pb.GraphArg(number=float(a)))
        if "attrs" in n:
            node.attrs.CopyFrom(json_format.ParseDict(n["attrs"], struct_pb2.Struct()))
        if "value" in n:
            node.value.CopyFrom(to_pb(pb, n["value"]))
        nodes.append(node)
    outputs = [pb.GraphOutput(name=o["name"], node=o["node"]) for o in g["outputs"]]
    return pb.Graph(inputs=pb_inputs(g["inputs"]), nodes=nodes, outputs=outputs, description=g.get("description", ""))


PAIRS = ("kernel", "stride", "padding", "dilation")
LAYER_FIELDS = {"countIncludePad": "count_include_pad", "ceilMode": "ceil_mode"}


def pb_model(m: dict) -> Any:
    """A model definition (docs/model.schema.json) as the typed Model message: pairs as lists of one or two."""
    layers = []
    for i, layer in enumerate(m.get("layers", [])):
        fields = {LAYER_FIELDS.get(k, k): ([v] if k in PAIRS and isinstance(v, int) else v) for k, v in layer.items()}
        try:
            layers.append(pb.Layer(**fields))
        except (TypeError, ValueError) as e:  # a field the message lacks, or a value of the wrong type
            raise AdjointError("invalid_argument", f"model.layers[{i}]: {e}", field=f"model.layers[{i}]") from e
    loss = m.get("loss", "")
    loss = loss.get("type", "") if isinstance(loss, dict) else loss
    return pb.Model(input=m.get("input", []), layers=layers, loss=loss, targets=m.get("targets", ""))


def pb_function(f: dict) -> Any:
    """The REST form of a function (what Client takes) as a Function message."""
    if "id" in f:
        return pb.Function(id=f["id"])
    if "expression" in f:
        return pb.Function(expression=f["expression"], inputs=pb_inputs(f.get("inputs")))
    if "expressions" in f:
        named = [pb.NamedExpression(name=k, text=v) for k, v in f["expressions"].items()]
        return pb.Function(expressions=pb.Expressions(outputs=named), inputs=pb_inputs(f.get("inputs")))
    if "graph" in f:
        return pb.Function(graph=pb_graph(f["graph"]))
    if "model" in f:
        return pb.Function(sequential_model=pb_model(f["model"]), batch=int(f.get("batch", 0)))
    raise AdjointError("invalid_argument", "a function needs one of expression, expressions, graph, model, id", field="function")


def pb_request(body: dict) -> Any:
    r = pb.DifferentiateRequest(function=pb_function(body["function"]), wrt=body.get("wrt", []))
    if "point" in body:
        r.point.CopyFrom(pb_point(pb, body["point"]))
    for p in body.get("points", []):
        r.points.append(pb_point(pb, p))
    for name, v in body.get("columns", {}).items():
        r.columns[name].CopyFrom(to_pb(pb, v))
    for key in ("tangent", "cotangent"):
        if key in body:
            getattr(r, key).CopyFrom(pb_point(pb, body[key]))
    r.mode = pb.Mode.Value("MODE_" + body.get("mode", "reverse").upper())
    if "precision" in body:
        r.precision = pb.Precision.Value("PRECISION_" + body["precision"].upper())
    if "method" in body:
        r.method = pb.JacobianMethod.Value("JACOBIAN_METHOD_" + body["method"].upper())
    if "order" in body:
        r.order = int(body["order"])
    if "initialize" in body:
        r.initialize.seed = int(body["initialize"]["seed"])
    r.trace, r.allow_non_finite, r.sparse = bool(body.get("trace")), bool(body.get("allowNonFinite")), bool(body.get("sparse"))
    return r


def csr(m: Any) -> dict:
    block = {"format": "csr", "shape": list(m.shape), "indptr": list(m.indptr), "indices": list(m.indices)}
    if m.HasField("data"):
        block["data"] = from_pb(pb, m.data)
    return block


def result(response: Any, r: Any) -> Result:
    outputs = pb_named(pb, r.outputs)
    fields: Dict[str, Any] = {k: pb_named(pb, getattr(r, k)) for k in TENSOR_MAPS if len(getattr(r, k))}
    for key, nested in (("jacobian", r.jacobian), ("hessian", r.hessian)):
        if len(nested):
            fields[key] = {a: pb_named(pb, m.tensors) for a, m in nested.items()}
    for key, nested in (("jacobian", r.sparse_jacobian), ("hessian", r.sparse_hessian)):
        if len(nested):
            fields[key] = {a: {b: csr(m) for b, m in blocks.matrices.items()} for a, blocks in nested.items()}
    fields.update({k: from_pb(pb, getattr(r, k)) for k in TENSORS if r.HasField(k)})
    fields.update({v: json_format.MessageToDict(getattr(r, k)) for k, v in MESSAGES.items() if r.HasField(k)})
    if r.method:
        fields["method"] = r.method
    if r.partials:
        fields["partials"] = list(r.partials)
    if r.colors:
        fields["colors"] = r.colors
    # The single-output shortcut; a server older than Result.value leaves it unset, so fall back to outputs.
    value = from_pb(pb, r.value) if r.HasField("value") else (next(iter(outputs.values())) if len(outputs) == 1 else None)
    params = pb_named(pb, response.parameters) if len(response.parameters) else None
    return Result(response.id, response.mode, value, outputs if value is None else {}, fields, params)


def info(m: Any, definition: Optional[dict]) -> FunctionInfo:
    def specs(xs: Any) -> list:
        return [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype or "float"} for s in xs]

    return FunctionInfo(m.id, specs(m.inputs), specs(m.outputs), m.node_count, m.op_count, definition)


def progress_of(m: Any) -> Progress:
    return Progress(int(m.iteration), m.value, m.gradient_norm, int(m.evaluations), m.elapsed_ms, pb_named(pb, m.point))


def pb_minimize(body: dict) -> Any:
    r = pb.MinimizeRequest(function=pb_function(body["function"]), start=pb_point(pb, body["start"]), wrt=body.get("wrt", []))
    r.method = body.get("method", "")
    for name, b in body.get("bounds", {}).items():
        bounds = r.bounds[name]
        for side in ("lower", "upper"):
            if b.get(side) is not None:
                getattr(bounds, side).CopyFrom(to_pb(pb, b[side]))
    for key, v in body.get("options", {}).items():
        setattr(r.options, OPTIONS.get(key, key), v)
    if "initialize" in body:
        r.initialize.seed = int(body["initialize"]["seed"])
    r.progress_every = int(body.get("progressEvery", 0))
    return r


class GrpcTransport:
    def __init__(self, target: str) -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.AdjointServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _unary(self, method: Callable, request: Any, timeout: float) -> Any:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as e:
            raise rpc_error(e) from None

    def differentiate(self, body: dict, timeout: float) -> Any:
        answer = self._unary(self.stub.Differentiate, pb_request(body), timeout)
        if "points" in body:
            return [result(answer, r) for r in answer.results]
        return result(answer, answer.columns if "columns" in body else answer.result)

    def register(self, function: dict, timeout: float) -> FunctionInfo:
        return info(self._unary(self.stub.RegisterFunction, pb.RegisterFunctionRequest(function=pb_function(function)), timeout), function)

    def describe(self, id: str, timeout: float) -> FunctionInfo:
        return info(self._unary(self.stub.GetFunction, pb.GetFunctionRequest(id=id), timeout), None)

    def ops(self, timeout: float) -> dict:
        return json_format.MessageToDict(self._unary(self.stub.ListOps, pb.ListOpsRequest(), timeout))

    def minimize(self, body: dict, progress: Optional[Callable[[Progress], None]], timeout: float) -> MinimizeResult:
        last = None
        try:
            for m in self.stub.Minimize(pb_minimize(body), timeout=timeout):
                if m.HasField("result"):
                    r = m.result
                    history = [progress_of(h) for h in r.history]
                    return MinimizeResult(pb_named(pb, r.point), r.value, r.gradient_norm, int(r.iterations), int(r.evaluations),
                                          r.status, r.message, r.id, r.method, int(r.hvps), history)
                last = progress_of(m)
                if progress is not None:
                    progress(last)
        except grpc.RpcError as e:
            if last is None or e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise rpc_error(e) from None
            # The deadline cut the call: the last progress message holds the best point so far.
            return MinimizeResult(last.point or {}, last.value, last.gradient_norm, last.iteration, last.evaluations, "deadline", e.details() or "")
        raise AdjointError("unavailable", "the Minimize stream ended without a result")


def rpc_error(e: grpc.RpcError) -> AdjointError:
    code = e.code()
    trailers = dict(e.trailing_metadata() or ())
    kind = trailers.get("adjoint-kind") or GRPC_KINDS.get(code.name, "internal")
    return AdjointError(kind, e.details() or code.name, field=trailers.get("adjoint-field"), status=code.name,
                        retry_after=parse_retry_after(trailers.get("retry-after")), request_id=trailers.get("x-request-id"))
