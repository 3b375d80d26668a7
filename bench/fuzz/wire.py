"""One keep-alive HTTP/1.1 connection that sends exactly the bytes it is given.

The fuzzer needs raw control (non-UTF-8 bodies and header values, odd query strings), and
sends one request at a time so that whatever the server logs belongs to the last request.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# an answer that never came: the connection broke, or the server took too long
CONNECTION_ERROR = -1
TIMED_OUT = -2


@dataclass
class Answer:
    status: int  # or CONNECTION_ERROR / TIMED_OUT
    body: bytes
    error: str = ""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def errcode(self) -> str | None:
        data = self.json()
        return data.get("errcode") if isinstance(data, dict) else None


class Connection:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the fuzzer speaks plain http to a local server, not {base_url}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: list[tuple[str, bytes | str]] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request; a broken keep-alive connection is retried once on a new one."""
        for attempt in (1, 2):
            fresh = self._conn is None
            conn = self._connect(timeout)
            try:
                conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
                for name, value in headers or []:
                    conn.putheader(name, value)
                if body is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders(body)
            except (BrokenPipeError, ConnectionResetError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 1 and not fresh:
                    continue
                return Answer(CONNECTION_ERROR, b"", f"sending: {exc!r}")
            try:
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                self.close()
                return Answer(TIMED_OUT, b"", "no answer in time")
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                # a keep-alive connection the server had already closed: not the request's fault
                if attempt == 1 and not fresh and isinstance(exc, http.client.RemoteDisconnected):
                    continue
                return Answer(CONNECTION_ERROR, b"", f"reading the answer: {exc!r}")
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return Answer(response.status, data)
        raise AssertionError("unreachable")

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._conn.connect()
            if self._conn.sock is not None:
                self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout if timeout is not None else self.timeout)
        return self._conn

    def json(self, method: str, path: str, body: Any = None, token: str | None = None) -> Answer:
        """A well-formed JSON request, as the fuzzer's own set-up sends them."""
        headers: list[tuple[str, bytes | str]] = []
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.append(("Content-Type", "application/json"))
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        return self.send(method, path, data, headers)
