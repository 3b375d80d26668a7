"""Matrix errors: an HTTP status plus `{"errcode": ..., "error": ...}`.

They belong to no transport: services raise them, and whichever edge answered the request
(the client API today, federation next) renders them.
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra
        # HTTP headers the answer carries besides the body (e.g. Retry-After on a 429)
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


def unrecognized(status: int = 404, error: str = "Unrecognized request") -> MatrixError:
    return MatrixError(status, "M_UNRECOGNIZED", error)


def not_json(error: str = "Content not JSON.") -> MatrixError:
    return MatrixError(400, "M_NOT_JSON", error)


def bad_json(error: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", error)


def too_large(error: str) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", error)


class TemporarilyUnavailable(Exception):
    """The request could not be served for now (e.g. no database connection in time); the
    same request may succeed after `retry_after_seconds`. Edges answer 503 with Retry-After."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
