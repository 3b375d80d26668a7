"""GET /_matrix/client/versions"""

from __future__ import annotations

from aiohttp import web

from ranvier.http.json import json_response

# The spec versions whose client-server API this server is built to. Endpoints arrive issue
# by issue (see README, "What works"); we never list versions newer than the spec we track.
SUPPORTED_SPEC_VERSIONS = tuple(f"v1.{minor}" for minor in range(1, 13))
# the MSCs served under their unstable prefixes, which clients look for here
UNSTABLE_FEATURES = {
    "org.matrix.msc3814": True,  # dehydrated devices
    "org.matrix.simplified_msc3575": True,  # simplified sliding sync (MSC4186)
}


async def get_versions(request: web.Request) -> web.Response:
    """GET /_matrix/client/versions"""
    return json_response(
        {"versions": list(SUPPORTED_SPEC_VERSIONS), "unstable_features": UNSTABLE_FEATURES}
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/_matrix/client/versions", get_versions)]
