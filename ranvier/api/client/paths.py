"""The older prefixes clients still call: `/_matrix/client/r0` for every endpoint that r0
had, and `/_matrix/client/unstable` for the few endpoints clients (and SyTest) still reach
there. Endpoint modules declare only their `/_matrix/client/v3` path; `with_legacy_prefixes`
adds the twins in one place, from the lists below.

The lists are data taken from the specs, not from what Ranvier serves: a path listed here
that no module serves yet gets its twin the day a module does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp import web

V3 = "/_matrix/client/v3"
R0 = "/_matrix/client/r0"
UNSTABLE = "/_matrix/client/unstable"

# spec: client-server r0.6.1, every endpoint under /_matrix/client/r0, path parameters
# written `{}`. v3-only endpoints (refresh, knock, cross-signing, key backup, reporting a
# room, the v1 endpoints) are left out: no r0 client calls them there. Beside the spec's
# own paths: the forms of the same endpoint r0 servers served (a state event with an empty
# state key, with or without the trailing slash; the push rule listings of one scope or
# kind; any profile field, as the one generic route serves displayname and avatar_url).
R0_PATHS = frozenset(
    {
        "/account/3pid",
        "/account/3pid/add",
        "/account/3pid/bind",
        "/account/3pid/delete",
        "/account/3pid/email/requestToken",
        "/account/3pid/msisdn/requestToken",
        "/account/3pid/unbind",
        "/account/deactivate",
        "/account/password",
        "/account/password/email/requestToken",
        "/account/password/msisdn/requestToken",
        "/account/whoami",
        "/admin/whois/{}",
        "/auth/{}/fallback/web",
        "/capabilities",
        "/createRoom",
        "/delete_devices",
        "/devices",
        "/devices/{}",
        "/directory/list/appservice/{}/{}",
        "/directory/list/room/{}",
        "/directory/room/{}",
        "/events",
        "/events/{}",
        "/initialSync",
        "/join/{}",
        "/joined_rooms",
        "/keys/changes",
        "/keys/claim",
        "/keys/query",
        "/keys/upload",
        "/login",
        "/login/sso/redirect",
        "/logout",
        "/logout/all",
        "/notifications",
        "/presence/{}/status",
        "/profile/{}",
        "/profile/{}/{}",
        "/publicRooms",
        "/pushers",
        "/pushers/set",
        "/pushrules/",
        "/pushrules/{}/",
        "/pushrules/{}/{}/",
        "/pushrules/{}/{}/{}",
        "/pushrules/{}/{}/{}/actions",
        "/pushrules/{}/{}/{}/enabled",
        "/register",
        "/register/available",
        "/register/email/requestToken",
        "/register/msisdn/requestToken",
        "/rooms/{}/aliases",
        "/rooms/{}/ban",
        "/rooms/{}/context/{}",
        "/rooms/{}/event/{}",
        "/rooms/{}/forget",
        "/rooms/{}/initialSync",
        "/rooms/{}/invite",
        "/rooms/{}/join",
        "/rooms/{}/joined_members",
        "/rooms/{}/kick",
        "/rooms/{}/leave",
        "/rooms/{}/members",
        "/rooms/{}/messages",
        "/rooms/{}/read_markers",
        "/rooms/{}/receipt/{}/{}",
        "/rooms/{}/redact/{}",
        "/rooms/{}/redact/{}/{}",
        "/rooms/{}/report/{}",
        "/rooms/{}/send/{}",
        "/rooms/{}/send/{}/{}",
        "/rooms/{}/state",
        "/rooms/{}/state/{}",
        "/rooms/{}/state/{}/",
        "/rooms/{}/state/{}/{}",
        "/rooms/{}/typing/{}",
        "/rooms/{}/unban",
        "/rooms/{}/upgrade",
        "/search",
        "/sendToDevice/{}/{}",
        "/sync",
        "/thirdparty/location",
        "/thirdparty/location/{}",
        "/thirdparty/protocol/{}",
        "/thirdparty/protocols",
        "/thirdparty/user",
        "/thirdparty/user/{}",
        "/user/{}/account_data/{}",
        "/user/{}/filter",
        "/user/{}/filter/{}",
        "/user/{}/openid/request_token",
        "/user/{}/rooms/{}/account_data/{}",
        "/user/{}/rooms/{}/tags",
        "/user/{}/rooms/{}/tags/{}",
        "/user_directory/search",
        "/voip/turnServer",
    }
)

# Endpoints that reached the spec after r0 and that clients released in between still call
# under /unstable, as Synapse serves them there: cross-signing uploads (SyTest's
# cross-signing tests too), key backup, and the identity-server binds of MSC2290 (SyTest's
# identity tests call them there).
UNSTABLE_PATHS = frozenset(
    {
        "/account/3pid/bind",
        "/account/3pid/unbind",
        "/keys/device_signing/upload",
        "/keys/signatures/upload",
        "/room_keys/keys",
        "/room_keys/keys/{}",
        "/room_keys/keys/{}/{}",
        "/room_keys/version",
        "/room_keys/version/{}",
    }
)

# v3 path (as above) -> its unstable name under an MSC prefix
UNSTABLE_RENAMED = {"/rooms/{}/aliases": "/org.matrix.msc2432/rooms/{}/aliases"}

_PARAMETER = re.compile(r"\{[^}]*\}")


def _shape(path: str) -> str:
    """The path with its parameters' names dropped, so the lists need not repeat them."""
    return _PARAMETER.sub("{}", path)


def _twins(route: web.RouteDef) -> Iterable[str]:
    if not route.path.startswith(V3 + "/"):
        return
    rest = route.path.removeprefix(V3)
    shape = _shape(rest)
    if shape in R0_PATHS:
        yield R0 + rest
    if shape in UNSTABLE_PATHS:
        yield UNSTABLE + rest
    renamed = UNSTABLE_RENAMED.get(shape)
    if renamed is not None:
        # put the route's own parameter names back into the renamed shape
        names = iter(_PARAMETER.findall(rest))
        yield UNSTABLE + re.sub(r"\{\}", lambda _: next(names), renamed)


def with_legacy_prefixes(route_defs: Iterable[web.RouteDef]) -> list[web.RouteDef]:
    """`route_defs` and, after them, the r0 and unstable twins of their v3 routes (the
    same handler), leaving out any twin a module already declares itself."""
    routes = list(route_defs)
    declared = {(route.method, route.path) for route in routes}
    twins: list[web.RouteDef] = []
    for route in routes:
        for path in _twins(route):
            if (route.method, path) in declared:
                continue
            declared.add((route.method, path))
            # a route name must be unique in the router: the twin goes unnamed
            kwargs = {key: value for key, value in route.kwargs.items() if key != "name"}
            twins.append(web.RouteDef(route.method, path, route.handler, kwargs))
    return routes + twins
