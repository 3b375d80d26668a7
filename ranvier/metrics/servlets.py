"""The `servlet` label of the HTTP metrics: Synapse's servlet name for the endpoints its
dashboard and admins' alert rules name, and the handler's own name for the others, so
the label is one value per endpoint (never a path with IDs in it)."""

from __future__ import annotations

import re

# a route's path after its API prefix and version, parameters as {} -> Synapse's name
SYNAPSE_SERVLETS: dict[str, str] = {
    "/rooms/{}/send/{}/{}": "RoomSendEventRestServlet",
    "/rooms/{}/send/{}": "RoomSendEventRestServlet",
    "/rooms/{}/state/{}/{}": "RoomStateEventRestServlet",
    "/rooms/{}/state/{}": "RoomStateEventRestServlet",
    "/rooms/{}/state": "RoomStateRestServlet",
    "/rooms/{}/messages": "RoomMessageListRestServlet",
    "/rooms/{}/members": "RoomMemberListRestServlet",
    "/rooms/{}/context/{}": "RoomEventContextServlet",
    "/rooms/{}/event/{}": "RoomEventServlet",
    "/rooms/{}/receipt/{}/{}": "ReceiptRestServlet",
    "/rooms/{}/read_markers": "ReadMarkerRestServlet",
    "/rooms/{}/typing/{}": "RoomTypingRestServlet",
    "/rooms/{}/join": "RoomMembershipRestServlet",
    "/rooms/{}/leave": "RoomMembershipRestServlet",
    "/rooms/{}/invite": "RoomMembershipRestServlet",
    "/rooms/{}/kick": "RoomMembershipRestServlet",
    "/rooms/{}/ban": "RoomMembershipRestServlet",
    "/rooms/{}/unban": "RoomMembershipRestServlet",
    "/rooms/{}/forget": "RoomMembershipRestServlet",
    "/join/{}": "JoinRoomAliasServlet",
    "/createRoom": "RoomCreateRestServlet",
    "/sync": "SyncRestServlet",
    "/login": "LoginRestServlet",
    "/logout": "LogoutRestServlet",
    "/register": "RegisterRestServlet",
    "/account/whoami": "WhoamiRestServlet",
    "/capabilities": "CapabilitiesRestServlet",
    "/versions": "VersionsRestServlet",
    "/keys/upload": "KeyUploadServlet",
    "/keys/query": "KeyQueryServlet",
    "/keys/claim": "OneTimeKeyServlet",
    "/keys/changes": "KeyChangesServlet",
    "/sendToDevice/{}/{}": "SendToDeviceRestServlet",
    "/presence/{}/status": "PresenceStatusRestServlet",
    "/profile/{}": "ProfileRestServlet",
    "/devices": "DevicesRestServlet",
    "/publicRooms": "PublicRoomListRestServlet",
    "/user_directory/search": "UserDirectorySearchRestServlet",
    "/voip/turnServer": "VoipRestServlet",
    "/send/{}": "FederationSendServlet",
}

# /_matrix/client/v3, /_matrix/client/r0, /_matrix/client/unstable, /_matrix/federation/v1
_PREFIX = re.compile(r"^/_matrix/(?:client|federation)/(?:v\d+|r0|unstable)(?=/)")
_PARAMETER = re.compile(r"\{[^}]*\}")

UNMATCHED = "UnrecognizedRequest"


def servlet_name(path_template: str | None, handler_name: str) -> str:
    """The label for a route, from its path template (aiohttp's canonical form, with
    `{name}` parameters) and its handler's qualified name."""
    if path_template is None:
        return handler_name
    match = _PREFIX.match(path_template)
    if match is not None:
        suffix = _PARAMETER.sub("{}", path_template[match.end() :])
        synapse_name = SYNAPSE_SERVLETS.get(suffix)
        if synapse_name is not None:
            return synapse_name
    return handler_name
