"""A real OpenID Provider on loopback (provider.mjs: the `oidc-provider` package under Node)
and a browser that follows redirects with a cookie jar, for the single sign-on tests."""

from __future__ import annotations

import html
import http.cookiejar
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parent / "provider.mjs"
NODE_MODULES = Path(__file__).parent.parent / "interop" / "js" / "node_modules"
# where the tests' client lives: the browser stops at its door
CLIENT_HOST = "client.example"
STARTUP_TIMEOUT = 20.0


@dataclass(frozen=True)
class OidcClient:
    id: str
    secret: str
    auth_method: str = "client_secret_basic"
    # where the provider sends back-channel logout tokens, if anywhere
    backchannel_logout_uri: str | None = None


@dataclass(frozen=True)
class RunningProvider:
    issuer: str
    process: subprocess.Popen[bytes]

    def set_claims(self, subject: str, claims: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.issuer}/test/claims/{subject}",
            data=json.dumps(claims).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204


@contextmanager
def running_provider(
    port: int, redirect_uri: str, clients: list[OidcClient], log_directory: Path
) -> Iterator[RunningProvider]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the single sign-on tests need Node 20 or newer")
    if not (NODE_MODULES / "oidc-provider").is_dir():
        pytest.fail(f"oidc-provider is not installed: run `npm ci` in {NODE_MODULES.parent}")
    issuer = f"http://127.0.0.1:{port}"
    settings = {
        "port": port,
        "issuer": issuer,
        "redirectUri": redirect_uri,
        "modules": str(NODE_MODULES),
        "clients": [
            {
                "id": c.id,
                "secret": c.secret,
                "authMethod": c.auth_method,
                "backchannelLogoutUri": c.backchannel_logout_uri,
            }
            for c in clients
        ],
    }
    log_path = log_directory / "oidc-provider.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [node, str(SCRIPT), json.dumps(settings)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        # it warns (development adapter, keys) before it listens
        while "listening\n" not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the OpenID provider did not start:\n" + log_path.read_text())
            time.sleep(0.05)
        yield RunningProvider(issuer, process)
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Page:
    status: int
    url: str
    body: str

    def link(self, pattern: str) -> str:
        """The first href matching `pattern`, unescaped."""
        for href in re.findall(r'href="([^"]+)"', self.body):
            href = html.unescape(href)
            if re.search(pattern, href):
                return urllib.parse.urljoin(self.url, href)
        raise AssertionError(f"no link matching {pattern!r} in:\n{self.body}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Follows redirects like a browser, keeping cookies, and stops at the client: a
    redirect there is returned as `arrived_at`."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )
        self.arrived_at: str | None = None

    def _open(
        self, method: str, url: str, form: dict[str, str] | None
    ) -> tuple[int, str, Any, str]:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self._opener.open(request, timeout=20) as response:
                return response.status, url, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, url, error.headers, error.read().decode(errors="replace")

    def go(
        self, url: str, form: dict[str, str] | None = None, *, method: str | None = None
    ) -> Page:
        method = method or ("POST" if form is not None else "GET")
        self.arrived_at = None
        for _ in range(20):
            status, url, headers, body = self._open(method, url, form)
            if status not in (301, 302, 303, 307, 308):
                return Page(status, url, body)
            target = urllib.parse.urljoin(url, headers["Location"])
            if urllib.parse.urlsplit(target).hostname == CLIENT_HOST:
                self.arrived_at = target
                return Page(status, target, body)
            if status in (301, 302, 303):
                method, form = "GET", None
            url = target
        raise AssertionError("too many redirects")

    def sign_in_at_provider(self, page: Page, account: str) -> Page:
        """Fill the provider's sign-in form as `account` and follow where it leads."""
        action = re.search(r'<form method="post" action="([^"]+)"', page.body)
        assert action is not None, page.body
        return self.go(urllib.parse.urljoin(page.url, action.group(1)), {"account": account})


def login_token_of(url: str) -> str:
    tokens = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("loginToken")
    assert tokens, url
    return tokens[0]
