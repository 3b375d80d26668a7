"""How failures of the event pipeline look to a client."""

from __future__ import annotations

from ranvier.errors import MatrixError
from ranvier.protocol.auth import AuthError
from ranvier.protocol.event_builder import EventBuildError
from ranvier.protocol.validation import PDUValidationError
from ranvier.services.rooms.sender import RoomNotFound


def as_matrix_error(exc: Exception) -> MatrixError | None:
    """The client-facing error for a refusal of the pipeline, or None if it is a fault."""
    if isinstance(exc, AuthError):
        return MatrixError(403, "M_FORBIDDEN", str(exc))
    if isinstance(exc, RoomNotFound):
        # the same answer as for a room one is not in: room IDs are not to be probed
        return MatrixError(403, "M_FORBIDDEN", "You are not in this room")
    if isinstance(exc, PDUValidationError):
        return MatrixError(413 if exc.errcode == "M_TOO_LARGE" else 400, exc.errcode, str(exc))
    if isinstance(exc, EventBuildError):
        return MatrixError(400, "M_BAD_JSON", str(exc))
    return None
