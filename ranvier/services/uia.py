"""User-interactive authentication (spec: client-server-api "User-Interactive Authentication
API"): the 401 dance of flows, stages and sessions that guards sensitive operations.

Stages plug in with `register_stage`. A stage's `check` sees the `auth` object the client
sent, parsed at the edge into a `StageAuth`, and the session, and either returns what it
proved (stored as the stage's result) or raises a MatrixError, which goes back to the client
inside the 401 body. Once the operation the session guarded has been carried out, the
endpoint calls `operation_completed`, and each completed stage's `on_complete` hook runs (a
registration token counts a use there).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.storage.ui_auth import UIAuthStore

logger = logging.getLogger(__name__)

# Synapse keeps sessions two days; long enough for an email round trip
SESSION_LIFETIME_MS = 48 * 60 * 60 * 1000

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"


@dataclass(frozen=True)
class PasswordCredentials:
    """The fields of m.login.password (login and UIA): the user as the client named them (a
    localpart or a user ID) and the password."""

    user: str
    password: str
    # an m.id.thirdparty identifier names the account by an address instead (`user` empty)
    medium: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class ThreepidCreds:
    """m.login.email.identity's `threepid_creds` (and /account/3pid/add's body): a
    validation session and the client_secret that started it."""

    sid: str
    client_secret: str


@dataclass(frozen=True)
class StageAuth:
    """The `auth` object of a request, parsed at the edge. Only the fields of the stage it
    names are read: `password` for m.login.password, `token` for
    m.login.registration_token."""

    type: str | None
    session: str | None
    password: PasswordCredentials | None = None
    token: str | None = None
    # m.login.recaptcha's `response`: what the captcha widget answered
    captcha_response: str | None = None
    # the address the request came from (siteverify is told it)
    client_ip: str | None = None
    # m.login.email.identity's session, whose mailed link must have been followed
    threepid_creds: ThreepidCreds | None = None
    # What was wrong with the stage's own fields. It is answered inside the 401, like any
    # failed stage, so the client can retry within the same session.
    problem: MatrixError | None = None


@dataclass
class UIASession:
    session_id: str
    operation: str
    clientdict: dict[str, Any]
    # per-stage server-side data; change it through `UserInteractiveAuth.set_session_value`
    serverdict: dict[str, Any]
    # stage type -> what the stage proved
    completed: dict[str, Any] = field(default_factory=dict)


class AuthStage(Protocol):
    async def check(self, auth: StageAuth, session: UIASession) -> Any:
        """What the stage proved (JSON-serialisable, e.g. a user ID); raise MatrixError to
        refuse (the client sees its errcode and error in the 401 body)."""
        ...

    async def on_complete(self, session: UIASession) -> None:
        """The operation this session guarded has been carried out."""
        ...

    def params(self) -> dict[str, Any] | None:
        """This stage's entry in the 401 body's `params`, or None for none."""
        ...


class DummyStage:
    """m.login.dummy: always passes; lets a flow exist that needs no credentials."""

    async def check(self, auth: StageAuth, session: UIASession) -> Any:
        return True

    async def on_complete(self, session: UIASession) -> None:
        pass

    def params(self) -> dict[str, Any] | None:
        return None


@dataclass(frozen=True)
class AuthResult:
    session: UIASession
    # the request body to act on: the session's first one if this request only authenticated
    clientdict: dict[str, Any]

    @property
    def completed(self) -> dict[str, Any]:
        return self.session.completed


class UserInteractiveAuth:
    def __init__(self, store: UIAuthStore) -> None:
        self._store = store
        self._stages: dict[str, AuthStage] = {DUMMY: DummyStage()}

    def register_stage(self, stage_type: str, checker: AuthStage) -> None:
        self._stages[stage_type] = checker

    def has_stage(self, stage_type: str) -> bool:
        return stage_type in self._stages

    async def set_session_value(self, session: UIASession, key: str, value: Any) -> None:
        session.serverdict[key] = value
        await self._store.set_server_value(session.session_id, key, value)

    async def authenticate(
        self,
        auth: StageAuth | None,
        clientdict: dict[str, Any],
        flows: list[list[str]],
        *,
        operation: str,
        server_values: dict[str, Any] | None = None,
    ) -> AuthResult:
        """Return once some flow is complete; until then raise the spec's 401 body.

        `clientdict` is the request body without `auth`: kept by a new session, and replaced
        by the session's if a later request sends only `auth`.

        `operation` names the request ("POST /_matrix/client/v3/delete_devices"): a session
        started for one operation is refused for any other. `server_values` are kept in the
        session for the request that completes it (e.g. a password hash, never the password).
        """
        session_id = auth.session if auth is not None else None
        if session_id is None:
            session = await self._new_session(operation, clientdict)
        else:
            session = await self._load_session(session_id, operation)
            # a client may send only `auth` on later requests, relying on the first body
            if not clientdict:
                clientdict = session.clientdict

        for key, value in (server_values or {}).items():
            await self.set_session_value(session, key, value)

        stage_type = auth.type if auth is not None else None
        if auth is not None and stage_type is not None:
            if not any(stage_type in f for f in flows):
                raise MatrixError(400, "M_UNRECOGNIZED", f"Unknown auth stage type {stage_type!r}")
            checker = self._stages.get(stage_type)
            if checker is None:
                raise MatrixError(400, "M_UNRECOGNIZED", f"Unsupported auth stage {stage_type!r}")
            try:
                if auth.problem is not None:
                    raise auth.problem
                result = await checker.check(auth, session)
            except MatrixError as failure:
                raise self._challenge(flows, session, failure) from None
            await self._store.mark_stage_complete(session.session_id, stage_type, result)
            session.completed[stage_type] = result

        if any(all(stage in session.completed for stage in flow) for flow in flows):
            return AuthResult(session, clientdict)
        raise self._challenge(flows, session, None)

    async def operation_completed(
        self, result: AuthResult, *, remember: dict[str, Any] | None = None
    ) -> None:
        """Run the completed stages' hooks and end the session: it cannot authorise again.

        With `remember`, the session is kept until it expires, holding these values, so a
        client that retries the request (its answer lost) can be given the same outcome;
        see `completed_value`. The hooks still run once only."""
        for stage_type in result.session.completed:
            checker = self._stages.get(stage_type)
            if checker is not None:
                await checker.on_complete(result.session)
        if remember is None:
            await self._store.delete_session(result.session.session_id)
            return
        for key, value in remember.items():
            await self.set_session_value(result.session, key, value)

    async def live_session(self, session_id: str) -> UIASession | None:
        """The session if it exists and has not expired, whatever operation it guards: for
        the fallback pages (spec: "Fallback"), which complete a stage outside the request."""
        stored = await self._store.get_session(session_id)
        if stored is None or stored.creation_ts < now_ms() - SESSION_LIFETIME_MS:
            return None
        completed = await self._store.get_completed_stages(session_id)
        return UIASession(
            stored.session_id, stored.operation, stored.clientdict, stored.serverdict, completed
        )

    async def complete_stage(self, session: UIASession, auth: StageAuth) -> None:
        """Run `auth`'s stage against `session` and record what it proved, so that the
        client's next request in the session finds the stage done; raise the stage's
        MatrixError when it refuses."""
        if auth.type is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing the auth stage type")
        checker = self._stages.get(auth.type)
        if checker is None:
            raise MatrixError(400, "M_UNRECOGNIZED", f"Unsupported auth stage {auth.type!r}")
        if auth.problem is not None:
            raise auth.problem
        result = await checker.check(auth, session)
        await self.record_stage_result(session, auth.type, result)

    async def record_stage_result(self, session: UIASession, stage_type: str, result: Any) -> None:
        """Mark `stage_type` done in `session` with what it proved, for a stage proved
        elsewhere (a single sign-on round trip)."""
        await self._store.mark_stage_complete(session.session_id, stage_type, result)
        session.completed[stage_type] = result

    async def completed_value(self, session_id: str, operation: str, key: str) -> Any:
        """What `operation_completed` remembered under `key` in this session, or None
        (no such session, expired, another operation's, or not completed)."""
        stored = await self._store.get_session(session_id)
        if (
            stored is None
            or stored.creation_ts < now_ms() - SESSION_LIFETIME_MS
            or stored.operation != operation
        ):
            return None
        return stored.serverdict.get(key)

    async def _new_session(self, operation: str, clientdict: dict[str, Any]) -> UIASession:
        now = now_ms()
        # expired sessions go whenever a new one starts: cheap, and no timer needed
        await self._store.delete_sessions_created_before(now - SESSION_LIFETIME_MS)
        session_id = secrets.token_urlsafe(24)
        await self._store.create_session(session_id, operation, clientdict, now)
        return UIASession(session_id, operation, clientdict, {})

    async def _load_session(self, session_id: str, operation: str) -> UIASession:
        stored = await self._store.get_session(session_id)
        if stored is None or stored.creation_ts < now_ms() - SESSION_LIFETIME_MS:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired auth session")
        if stored.operation != operation:
            # spec: a session must not be reused for a different request
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                "This auth session was started for a different request; start a new one",
            )
        completed = await self._store.get_completed_stages(session_id)
        return UIASession(
            stored.session_id, stored.operation, stored.clientdict, stored.serverdict, completed
        )

    def _challenge(
        self, flows: list[list[str]], session: UIASession, failure: MatrixError | None
    ) -> MatrixError:
        params: dict[str, Any] = {}
        for flow in flows:
            for stage_type in flow:
                checker = self._stages.get(stage_type)
                stage_params = checker.params() if checker is not None else None
                if stage_params is not None:
                    params[stage_type] = stage_params
        body: dict[str, Any] = {
            "flows": [{"stages": list(flow)} for flow in flows],
            "params": params,
            "session": session.session_id,
            "completed": list(session.completed),
        }
        if failure is None:
            # MatrixError always carries errcode/error; the spec's first 401 has neither,
            # so the body is built whole and the middleware sends it as it is
            return UIAChallenge(body)
        return UIAChallenge({**body, "errcode": failure.errcode, "error": failure.error})


class UIAChallenge(MatrixError):
    """A 401 whose body is exactly the user-interactive auth state (no errcode on the first
    challenge, spec: "User-interactive API in the REST API")."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(401, str(body.get("errcode", "")), str(body.get("error", "")))
        self._full_body = body

    def body(self) -> dict[str, Any]:
        return self._full_body
