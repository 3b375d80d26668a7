"""Registration tokens: the admin's CRUD on them, the public validity check, and the
`m.login.registration_token` stage of user-interactive auth at /register.

A token is valid while it has not expired and fewer than `uses_allowed` registrations have
used it; a UIA session that passes the stage holds one use (`pending`) until its registration
completes (`completed`) or the session ends.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import Any

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.uia import StageAuth, UIASession
from ranvier.storage.registration_tokens import (
    UNSET,
    RegistrationToken,
    RegistrationTokenStore,
)

STAGE_TYPE = "m.login.registration_token"
# spec: "Token-authenticated registration" - opaque identifier grammar, at most 64 characters
TOKEN_CHARACTERS = string.ascii_letters + string.digits + "._~-"
MAX_TOKEN_LENGTH = 64
DEFAULT_TOKEN_LENGTH = 16

_TOKEN_CHARACTER_SET = frozenset(TOKEN_CHARACTERS)


def invalid_param(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def check_token_syntax(token: str) -> None:
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise invalid_param(f"token must be between 1 and {MAX_TOKEN_LENGTH} characters long")
    if not set(token) <= _TOKEN_CHARACTER_SET:
        raise invalid_param(
            "token may only contain the characters A-Z, a-z, 0-9, '.', '_', '~' and '-'"
        )


def generate_token(length: int) -> str:
    return "".join(secrets.choice(TOKEN_CHARACTERS) for _ in range(length))


class RegistrationTokenService:
    def __init__(
        self,
        store: RegistrationTokenStore,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._clock_ms = clock_ms

    def _check_expiry(self, expiry_time: int | None) -> None:
        if expiry_time is not None and expiry_time < self._clock_ms():
            raise invalid_param("expiry_time must not be in the past")

    async def create(
        self,
        token: str | None,
        length: int,
        uses_allowed: int | None,
        expiry_time: int | None,
    ) -> RegistrationToken:
        """Store a new token (`token`, or `length` random characters); 400 M_INVALID_PARAM
        if the token exists already, as Synapse answers."""
        self._check_expiry(expiry_time)
        if token is not None:
            check_token_syntax(token)
            if not await self._store.create(token, uses_allowed, expiry_time):
                raise invalid_param(f"Token already exists: {token}")
        else:
            if not 0 < length <= MAX_TOKEN_LENGTH:
                raise invalid_param(
                    f"length must be greater than zero and at most {MAX_TOKEN_LENGTH}"
                )
            # a collision is possible only for very short tokens; try a few times
            for _ in range(10):
                token = generate_token(length)
                if await self._store.create(token, uses_allowed, expiry_time):
                    break
            else:
                raise invalid_param(
                    f"Could not find an unused token of length {length}; use a longer one"
                )
        return RegistrationToken(token, uses_allowed, 0, 0, expiry_time)

    async def get(self, token: str) -> RegistrationToken:
        found = await self._store.get(token, self._clock_ms())
        if found is None:
            raise _not_found(token)
        return found

    async def list_tokens(self, valid: bool | None) -> list[RegistrationToken]:
        return await self._store.list_tokens(valid, self._clock_ms())

    async def update(
        self, token: str, *, uses_allowed: Any = UNSET, expiry_time: Any = UNSET
    ) -> RegistrationToken:
        """Change the attributes given; leave out (UNSET) what should stay."""
        if expiry_time is not UNSET:
            self._check_expiry(expiry_time)
        updated = await self._store.update(
            token, self._clock_ms(), uses_allowed=uses_allowed, expiry_time=expiry_time
        )
        if updated is None:
            raise _not_found(token)
        return updated

    async def delete(self, token: str) -> None:
        if not await self._store.delete(token):
            raise _not_found(token)

    async def is_valid(self, token: str) -> bool:
        return await self._store.is_valid(token, self._clock_ms())

    def stage(self) -> RegistrationTokenStage:
        """The UIA stage to register as `m.login.registration_token`."""
        return RegistrationTokenStage(self)

    async def check_stage(self, session_id: str, token: str | None) -> str:
        """The `m.login.registration_token` UIA stage: the token proven, held by the session
        as a pending use. A token that is unknown, used up or expired is 401 M_UNAUTHORIZED
        (the caller adds the UIA body), as Synapse answers."""
        if token is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing registration token")
        if not await self._store.hold(session_id, token, self._clock_ms()):
            raise MatrixError(401, "M_UNAUTHORIZED", "Invalid registration token")
        return token

    async def registration_completed(self, session_id: str, token: str) -> None:
        """The registration the session was for succeeded: the held use is completed."""
        await self._store.complete(session_id, token)


class RegistrationTokenStage:
    """`m.login.registration_token` for UserInteractiveAuth.register_stage."""

    def __init__(self, service: RegistrationTokenService) -> None:
        self._service = service

    async def check(self, auth: StageAuth, session: UIASession) -> Any:
        return await self._service.check_stage(session.session_id, auth.token)

    async def on_complete(self, session: UIASession) -> None:
        token = session.completed.get(STAGE_TYPE)
        if isinstance(token, str):
            await self._service.registration_completed(session.session_id, token)

    def params(self) -> dict[str, Any] | None:
        return None


def _not_found(token: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", f"No such registration token: {token}")
