"""Logging in with a JSON web token (Synapse's `jwt_config`, login type
`org.matrix.login.jwt`): a service the admin trusts signs a token naming the user, and the
client trades it at /login for an access token. An unknown user is registered on the way.
"""

from __future__ import annotations

from typing import Any

from ranvier.config.jwt import JwtConfig
from ranvier.errors import MatrixError
from ranvier.services.accounts import AccountService
from ranvier.storage.users import UserStore

LOGIN_TYPE = "org.matrix.login.jwt"
# clock skew between the token's issuer and this server, as Synapse allows
LEEWAY_SECONDS = 120


def invalid_token(reason: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", f"Invalid JWT: {reason}")


class JwtLogin:
    def __init__(
        self, config: JwtConfig, accounts: AccountService, users: UserStore, server_name: str
    ) -> None:
        assert config.enabled and config.algorithm is not None
        self._config = config
        self._algorithm = config.algorithm
        self._key = config.verification_key()
        self._accounts = accounts
        self._users = users
        self._server_name = server_name
        options: dict[str, Any] = {}
        if config.issuer is not None:
            options["iss"] = {"essential": True, "value": config.issuer}
        if config.audiences is not None:
            options["aud"] = {"essential": True, "values": config.audiences}
        # imported here, as in config/jwt.py: only a server with jwt_config loads it
        from joserfc import jwt

        # exp and nbf are checked whenever the token has them
        self._claims = jwt.JWTClaimsRegistry(leeway=LEEWAY_SECONDS, **options)

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, algorithm, times, issuer and audience
        are checked; 403 M_FORBIDDEN otherwise."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            decoded = jwt.decode(token, self._key, algorithms=[self._algorithm])
            self._claims.validate(decoded.claims)
        except JoseError as exc:
            raise invalid_token(exc.description or exc.error) from None
        except ValueError:
            raise invalid_token("not a JSON web token") from None
        return dict(decoded.claims)

    async def user_for_token(self, token: str) -> str:
        """The user the token names, registered if it is new."""
        claims = self.claims(token)
        subject = claims.get(self._config.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise invalid_token(f"no {self._config.subject_claim!r} claim naming the user")
        localpart = subject
        if subject.startswith("@"):
            localpart, _, server = subject[1:].partition(":")
            if server != self._server_name:
                raise invalid_token("the user is not on this server")
        # user IDs are registered lower case, as /register does
        localpart = localpart.lower()
        user_id = self._accounts.user_id(localpart)
        user = await self._users.get_user(user_id)
        if user is not None:
            if user.deactivated:
                raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
            return user_id
        display_name = None
        if self._config.display_name_claim is not None:
            claimed = claims.get(self._config.display_name_claim)
            display_name = claimed if isinstance(claimed, str) and claimed else None
        try:
            registered = await self._accounts.register(
                localpart=localpart,
                password_hash=None,
                device_id=None,
                display_name=None,
                inhibit_login=True,
                refresh=False,
                displayname=display_name,
            )
        except MatrixError as refusal:
            if refusal.errcode != "M_USER_IN_USE":
                raise
            # a concurrent first login with the same token registered it
            return user_id
        return registered.user_id
