"""Reading credentials off a request: plumbing only; deciding who they belong to is
`api/authentication.py`'s job.

spec: client-server-api "Using access tokens" - the token travels in the Authorization
header only (the spec removed the `access_token` query parameter).
"""

from __future__ import annotations

from aiohttp import web


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
