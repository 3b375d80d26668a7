"""A stand-in for Google's reCAPTCHA siteverify API on loopback, scripted by the test: it
records each form the homeserver posts and answers by the captcha answer it was sent.

- "solved": success
- "unsolved": refused, with Google's error code for a wrong answer
- "broken": HTTP 500 (siteverify failing)
- "hang up": the connection is closed without an answer (siteverify unreachable)
"""

from __future__ import annotations

import threading
from typing import Any

from aiohttp import web

from bench.threaded_https import ThreadedHttpsServer, bound_socket

SOLVED = "solved"
UNSOLVED = "unsolved"
BROKEN = "broken"
HANG_UP = "hang up"


class SiteverifyStub:
    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._socket = bound_socket()
        port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/recaptcha/api/siteverify"
        self._server = ThreadedHttpsServer(self._handle, None, self._socket, "siteverify")

    def __enter__(self) -> SiteverifyStub:
        self._server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.stop()

    def forms_for(self, answer: str) -> list[dict[str, str]]:
        with self._lock:
            return [form for form in self.forms if form.get("response") == answer]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/recaptcha/api/siteverify":
            return web.json_response({"error": "not here"}, status=404)
        form = {key: str(value) for key, value in (await request.post()).items()}
        with self._lock:
            self.forms.append(form)
        answer = form.get("response")
        if answer == HANG_UP:
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("hung up on purpose")
        if answer == BROKEN:
            return web.Response(status=500, text="internal error")
        body: dict[str, Any] = {"success": answer == SOLVED}
        if answer != SOLVED:
            body["error-codes"] = ["invalid-input-response"]
        else:
            body["hostname"] = "client.example"
        return web.json_response(body)
