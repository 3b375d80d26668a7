"""The first check of a membership event another server hands us in a handshake
(send_join, send_leave, send_knock, invite), with the answers other servers expect.

The spec leaves the codes open ("a specific error code is not mandated", M_INVALID_PARAM
suggested); servers and SyTest go by Synapse's: an event that is not valid JSON for its room
version (a float or an out-of-range integer from version 6, a missing field) is 400
M_BAD_JSON (M_TOO_LARGE when too large), one that is unsigned, or whose signature does not
verify, is 403 M_FORBIDDEN. An event with no hashes or signatures at all is taken as
unsigned, whatever else is wrong with it: that is what a template sent back unsigned looks
like.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion
from ranvier.protocol.signing import SignatureError
from ranvier.protocol.validation import PDUValidationError
from ranvier.services.federation.event_checks import EventVerifier

# sends a membership event another server handed us on to the room's other servers, all
# but that server (FederationSender.relay)
Relay = Callable[[Event, str], Awaitable[None]]


def not_signed(what: str, reason: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", f"The {what} is not signed as it must be: {reason}")


def require_signed(pdu: Any, what: str) -> Mapping[str, Any]:
    """`pdu`, if it is an object with signatures and a content hash, to check further."""
    if not isinstance(pdu, Mapping):
        raise MatrixError(400, "M_BAD_JSON", f"The {what} must be a JSON object")
    signatures = pdu.get("signatures")
    if not isinstance(signatures, Mapping) or not signatures:
        raise not_signed(what, "it has no signatures")
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping) or not isinstance(hashes.get("sha256"), str):
        raise not_signed(what, "it has no content hash")
    return pdu


async def checked_membership_pdu(
    verifier: EventVerifier, pdu: Any, room_version: RoomVersion, what: str
) -> Event:
    """`pdu` as an Event once its format and signatures are checked (EventVerifier:
    also its content hash, a wrong one giving the redacted event); `what` ("join event")
    names it in the refusal."""
    try:
        return await verifier.check_pdu(require_signed(pdu, what), room_version)
    except PDUValidationError as exc:
        raise MatrixError(400, exc.errcode, f"Invalid {what}: {exc}") from None
    except SignatureError as exc:
        raise not_signed(what, str(exc)) from None
