"""Reading credentials off a request: plumbing only; deciding who they belong to is
`api/authentication.py`'s job.

spec: client-server-api "Using access tokens" - the token travels in the Authorization
header, or (deprecated, but required by every version up to v1.10 that /versions
advertises, and still sent by bots and bridges) in the `access_token` query parameter.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError

ACCESS_TOKEN_PARAM = "access_token"


def access_token(request: web.Request) -> str | None:
    """The access token the request sends, or None if it sends none.

    Both places at once is refused as Synapse refuses it (401 M_MISSING_TOKEN): a client
    that sends two tokens would otherwise be served as whichever one we happened to read.
    """
    headers = request.headers.getall("Authorization", [])
    params = request.query.getall(ACCESS_TOKEN_PARAM, [])
    if headers and params:
        raise MatrixError(
            401,
            "M_MISSING_TOKEN",
            "Send the access token in the Authorization header or the access_token "
            "query parameter, not both",
        )
    if len(headers) > 1:
        raise MatrixError(401, "M_MISSING_TOKEN", "Too many Authorization headers")
    if headers:
        return bearer_token(headers[0])
    if params:
        # an empty or repeated parameter is still an attempt: the first value is looked up,
        # so `?access_token=` answers M_UNKNOWN_TOKEN rather than being taken for no token
        return params[0]
    return None


def bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
