"""What can go wrong sending a request to another server.

Services decide what each means for their caller: a profile lookup might answer 404, a
join 502. None of these is a MatrixError, so none reaches a client unchosen.
"""

from __future__ import annotations

from typing import Any


class FederationError(Exception):
    """A request to `destination` did not give a usable answer."""

    def __init__(self, destination: str, message: str) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination


class DestinationUnreachable(FederationError):
    """No answer from `destination`: its name did not resolve, every address was refused
    (ip_range_blacklist, federation_domain_whitelist), the connection or TLS verification
    failed, or it timed out."""


class NotRetrying(DestinationUnreachable):
    """`destination` failed recently and its backoff has not run out: nothing was sent."""

    def __init__(self, destination: str, retry_at_ms: int) -> None:
        super().__init__(destination, f"not retrying until {retry_at_ms} (backing off)")
        self.retry_at_ms = retry_at_ms


class RemoteRequestFailed(FederationError):
    """`destination` answered with an error status; `errcode` is its Matrix errcode when
    the body was a Matrix error, and `body` the parsed JSON body (None if not JSON)."""

    def __init__(
        self, destination: str, status: int, errcode: str | None, body: Any, message: str = ""
    ) -> None:
        described = f"HTTP {status}" + (f" {errcode}" if errcode else "")
        super().__init__(destination, described + (f": {message}" if message else ""))
        self.status = status
        self.errcode = errcode
        self.body = body
        self.message = message
