"""Synapse's `jwt_config`: logging in with a JSON web token signed by a service the admin
trusts (login type `org.matrix.login.jwt`, services/jwt_login.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

if TYPE_CHECKING:
    from joserfc import jwk

# the signing algorithms a token may use; "none" (unsigned) is never accepted
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
PUBLIC_KEY_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class Section(BaseModel):
    # as models.Section, which imports this module
    model_config = ConfigDict(extra="forbid", frozen=True)


class JwtConfig(Section):
    enabled: bool = False
    # the shared secret (HS*), or the PEM public key the tokens' signatures verify with
    secret: str | None = None
    algorithm: str | None = None
    # the claim holding the localpart (or full user ID) to log in as
    subject_claim: str = "sub"
    # a claim whose value becomes the display name of a user the login creates
    display_name_claim: str | None = None
    # when set, the token's `iss` must be exactly this
    issuer: str | None = None
    # when set, the token's `aud` must name one of these
    audiences: list[str] | None = None

    @field_validator("audiences", mode="before")
    @classmethod
    def _one_audience(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _usable(self) -> JwtConfig:
        if not self.enabled:
            return self
        if not self.secret:
            raise ValueError("secret is required when JWT login is enabled")
        allowed = HMAC_ALGORITHMS + PUBLIC_KEY_ALGORITHMS
        if self.algorithm not in allowed:
            raise ValueError(
                f"algorithm must be one of {', '.join(allowed)}, not {self.algorithm!r}"
            )
        self.verification_key()
        return self

    def verification_key(self) -> jwk.OctKey | jwk.RSAKey | jwk.ECKey | jwk.OKPKey:
        """The key `secret` is for `algorithm`; ValueError if it is not one."""
        # imported here: the JOSE library (and the cryptography it loads) costs every server
        # some 9 MiB, and only one with jwt_config needs it
        from joserfc import jwk
        from joserfc.errors import JoseError

        assert self.secret is not None and self.algorithm is not None
        # the kind of public key each family of algorithms verifies with
        key_types: dict[str, type[jwk.RSAKey] | type[jwk.ECKey] | type[jwk.OKPKey]] = {
            "RS": jwk.RSAKey,
            "PS": jwk.RSAKey,
            "ES": jwk.ECKey,
            "Ed": jwk.OKPKey,
        }
        try:
            if self.algorithm in HMAC_ALGORITHMS:
                return jwk.OctKey.import_key(self.secret)
            return key_types[self.algorithm[:2]].import_key(self.secret)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(
                f"secret is not a key {self.algorithm} verifies with (give the PEM public "
                f"key of the token issuer): {exc}"
            ) from None
