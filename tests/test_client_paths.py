"""The r0 and unstable twins of v3 routes (ranvier/api/client/paths.py)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.client.paths import R0_PATHS, UNSTABLE_PATHS, with_legacy_prefixes


async def handler(request: web.Request) -> web.Response:
    return web.Response()


def paths(routes: list[web.RouteDef]) -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in routes}


def test_r0_twin_for_an_r0_endpoint_with_any_parameter_names() -> None:
    routes = with_legacy_prefixes(
        [web.put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", handler)]
    )
    assert ("PUT", "/_matrix/client/r0/rooms/{room}/send/{type}/{txn}") in paths(routes)
    assert all(route.handler is handler for route in routes)


def test_no_twin_for_endpoints_r0_lacked() -> None:
    routes = [
        web.post("/_matrix/client/v3/refresh", handler),
        web.post("/_matrix/client/v3/knock/{roomIdOrAlias}", handler),
        web.get("/_matrix/client/v1/rooms/{roomId}/threads", handler),
        web.get("/_matrix/media/v3/config", handler),
    ]
    assert with_legacy_prefixes(routes) == routes


def test_unstable_twins() -> None:
    routes = with_legacy_prefixes(
        [
            web.post("/_matrix/client/v3/keys/device_signing/upload", handler),
            web.get("/_matrix/client/v3/rooms/{roomId}/aliases", handler),
        ]
    )
    assert ("POST", "/_matrix/client/unstable/keys/device_signing/upload") in paths(routes)
    assert (
        "GET",
        "/_matrix/client/unstable/org.matrix.msc2432/rooms/{roomId}/aliases",
    ) in paths(routes)
    # cross-signing arrived after r0
    assert ("POST", "/_matrix/client/r0/keys/device_signing/upload") not in paths(routes)


def test_a_twin_a_module_declares_itself_is_not_added_again() -> None:
    own = web.get("/_matrix/client/r0/admin/whois/{user_id}", handler)
    routes = with_legacy_prefixes(
        [web.get("/_matrix/client/v3/admin/whois/{user_id}", handler), own]
    )
    assert [r.path for r in routes].count("/_matrix/client/r0/admin/whois/{user_id}") == 1
    # and the router takes the result: no duplicate route or name
    app = web.Application()
    app.add_routes(with_legacy_prefixes([web.get("/_matrix/client/v3/sync", handler, name="s")]))


def test_lists_are_paths_with_anonymous_parameters() -> None:
    for path in R0_PATHS | UNSTABLE_PATHS:
        assert path.startswith("/")
        assert "{}" in path or "{" not in path
