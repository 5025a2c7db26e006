"""REST transport over http.client (standard library): JSON with base64 tensors, SSE for minimize."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from typing import Any, Callable, Iterator, Optional, Tuple

from ._errors import AdjointError, parse_retry_after
from ._tensor import from_json, json_named, to_json
from ._types import FunctionInfo, MinimizeResult, Progress, Result

RESULT_META = ("id", "mode", "value", "outputs", "parameters")


def json_body(body: dict) -> dict:
    """The client's neutral request (numpy tensors) as REST JSON (base64 tensors)."""
    out = dict(body)
    for key in ("point", "tangent", "cotangent", "columns", "start"):
        if key in out:
            out[key] = json_named(out[key])
    if "points" in out:
        out["points"] = [json_named(p) for p in out["points"]]
    if "bounds" in out:
        out["bounds"] = {k: {s: to_json(v) for s, v in b.items() if v is not None} for k, b in out["bounds"].items()}
    return out


def result_from_json(body: dict, row: dict) -> Result:
    fields = {k: v for k, v in row.items() if k not in RESULT_META}
    return Result(body.get("id", ""), body.get("mode", ""), row.get("value"), dict(row.get("outputs", {})), fields, body.get("parameters"))


def info_from_json(body: dict, definition: Optional[dict]) -> FunctionInfo:
    return FunctionInfo(body["id"], body.get("inputs", []), body.get("outputs", []), body.get("nodeCount", 0), body.get("opCount", 0), definition)


def progress_from_json(d: dict) -> Progress:
    return Progress(int(d["iteration"]), float(d["value"]), float(d.get("gradientNorm", 0)), int(d.get("evaluations", 0)), float(d.get("elapsedMs", 0)), d.get("point"))


def minimize_from_json(d: dict) -> MinimizeResult:
    return MinimizeResult(
        point=d["point"], value=float(d["value"]), gradient_norm=float(d.get("gradientNorm", 0)),
        iterations=int(d.get("iterations", 0)), evaluations=int(d.get("evaluations", 0)), status=d.get("status", ""),
        message=d.get("message", ""), id=d.get("id", ""), method=d.get("method", ""), hvps=int(d.get("hvps", 0)),
        history=[progress_from_json(h) for h in d.get("history", [])],
    )


class HttpTransport:
    """One kept-alive connection per thread to a base URL such as http://host:8080."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.local = threading.local()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self.local.conn = cls(self.host, self.port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
            self.local.conn = None

    def _send(self, method: str, path: str, body: Any, timeout: float, accept: str) -> http.client.HTTPResponse:
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"accept": accept}
        if data is not None:
            headers["content-type"] = "application/json"
        for attempt in (0, 1):
            conn = self._connection(timeout)
            try:
                conn.request(method, self.prefix + path, body=data, headers=headers)
                return conn.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self.close()
                # A kept-alive connection the server closed meanwhile: once more on a fresh one.
                if attempt == 1 or isinstance(e, TimeoutError):
                    raise AdjointError("unavailable", f"{self.host}:{self.port}: {e}", status=None) from e
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, body: Any, timeout: float) -> dict:
        response = self._send(method, path, body, timeout, "application/json")
        text = response.read()
        if response.status >= 400:
            raise problem(response, text)
        return json.loads(text)

    def differentiate(self, body: dict, timeout: float) -> Any:
        answer = from_json(self._json("POST", "/v1/differentiate", {**json_body(body), "encoding": "base64"}, timeout))
        if "results" in answer:
            return [result_from_json(answer, r) for r in answer["results"]]
        if "columns" in answer:
            return result_from_json(answer, answer["columns"])
        return result_from_json(answer, answer)

    def register(self, function: dict, timeout: float) -> FunctionInfo:
        return info_from_json(self._json("POST", "/v1/functions", {"function": function}, timeout), function)

    def describe(self, id: str, timeout: float) -> FunctionInfo:
        return info_from_json(self._json("GET", f"/v1/functions/{urllib.parse.quote(id)}", None, timeout), None)

    def ops(self, timeout: float) -> dict:
        return self._json("GET", "/v1/ops", None, timeout)

    def minimize(self, body: dict, progress: Optional[Callable[[Progress], None]], timeout: float) -> MinimizeResult:
        body = {**json_body(body), "encoding": "base64"}
        if progress is None:
            return minimize_from_json(from_json(self._json("POST", "/v1/minimize", body, timeout)))
        response = self._send("POST", "/v1/minimize", body, timeout, "text/event-stream")
        if response.status >= 400:
            raise problem(response, response.read())
        try:
            for event, data in sse_events(response):
                if event == "progress":
                    progress(progress_from_json(from_json(data)))
                elif event == "error":
                    raise problem_from_json(data, data.get("status"), None)
                elif event == "result":
                    return minimize_from_json(from_json(data))
        finally:
            self.close()  # an event stream is not reused
        raise AdjointError("unavailable", "the minimize stream ended without a result")


def sse_events(response: http.client.HTTPResponse) -> Iterator[Tuple[str, dict]]:
    event, data = "message", []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def problem(response: http.client.HTTPResponse, text: bytes) -> AdjointError:
    try:
        body = json.loads(text)
    except ValueError:
        body = {"detail": text.decode(errors="replace")}
    return problem_from_json(body, response.status, parse_retry_after(response.getheader("retry-after")))


def problem_from_json(body: dict, status: Any, retry_after: Optional[float]) -> AdjointError:
    kind = body.get("kind") or {404: "not_found", 503: "unavailable", 504: "deadline_exceeded"}.get(status, "internal")
    return AdjointError(kind, body.get("detail", ""), field=body.get("field"), status=status, retry_after=retry_after, request_id=body.get("requestId"), problem=body)
