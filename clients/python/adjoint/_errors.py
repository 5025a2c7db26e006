"""The one exception the client raises, whatever the transport."""

from __future__ import annotations

from typing import Any, Optional

# The problem kinds of docs/service.md ("Errors") and their gRPC status names.
GRPC_KINDS = {
    "INVALID_ARGUMENT": "invalid_argument",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "resource_exhausted",
    "DEADLINE_EXCEEDED": "deadline_exceeded",
    "UNAVAILABLE": "unavailable",
    "CANCELLED": "cancelled",
    "INTERNAL": "internal",
}


class AdjointError(Exception):
    """A refusal or failure: `kind` (invalid_argument, not_found, resource_exhausted, deadline_exceeded,
    unavailable, cancelled, internal), `field` (a dotted path into the request, when known), `detail`
    (the service's message), `status` (HTTP status or gRPC code name) and `retry_after` (seconds, when
    the service asked to be retried later)."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        field: Optional[str] = None,
        status: Any = None,
        retry_after: Optional[float] = None,
        request_id: Optional[str] = None,
        problem: Optional[dict] = None,
    ) -> None:
        super().__init__(f"{kind}: {detail}" if field is None else f"{kind} ({field}): {detail}")
        self.kind = kind
        self.detail = detail
        self.field = field
        self.status = status
        self.retry_after = retry_after
        self.request_id = request_id
        self.problem = problem or {}

    @property
    def retryable(self) -> bool:
        """Worth trying again: a full queue (503 / RESOURCE_EXHAUSTED with retry-after), or a replica
        that is shutting down or unreachable."""
        return self.retry_after is not None or self.kind == "unavailable"


def parse_retry_after(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        return 1.0  # an HTTP date: not worth parsing, the service sends seconds
