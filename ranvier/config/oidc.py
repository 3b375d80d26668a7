"""Single sign-on through OpenID Connect providers: Synapse's `oidc_providers` list and its
`sso` section, with the same keys and defaults so that an admin's homeserver.yaml carries over.

Everything that can be checked without asking the provider is checked here, at start-up,
with a message saying what to change. docs/sso.md walks an admin through setting one up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import jinja2.sandbox
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# Synapse's rule for idp_id and idp_brand: they end up in URLs and in the user_external_ids
# table, so they stay short and URL-safe
_IDP_ID = re.compile(r"[A-Za-z0-9._~-]+")
IDP_ID_MAX_LENGTH = 250
_BRAND = re.compile(r"[a-z][a-z0-9_.-]*")

# the one mapping provider there is: Synapse's name for it, so admins' files carry over
JINJA_MAPPING_PROVIDER = "synapse.handlers.oidc.JinjaOidcMappingProvider"
_MAPPING_PROVIDER_NAMES = (
    JINJA_MAPPING_PROVIDER,
    "synapse.handlers.oidc_handler.JinjaOidcMappingProvider",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserMappingConfig(_Section):
    """`user_mapping_provider.config`: Jinja2 templates over the provider's claims (`user`)."""

    subject_claim: str = "sub"
    # a template instead of one claim, for providers whose unique ID is spread over claims
    subject_template: str | None = None
    localpart_template: str | None = None
    display_name_template: str | None = None
    email_template: str | None = None
    # show the username picker with the mapped localpart filled in, for the user to confirm
    confirm_localpart: bool = False

    @field_validator(
        "subject_template", "localpart_template", "display_name_template", "email_template"
    )
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                jinja2.sandbox.SandboxedEnvironment().parse(value)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"{value!r} is not a valid Jinja2 template: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_subject(self) -> UserMappingConfig:
        if self.subject_template is not None and self.subject_claim != "sub":
            raise ValueError("set either subject_claim or subject_template, not both")
        return self


class UserMappingProvider(_Section):
    module: str = JINJA_MAPPING_PROVIDER
    config: UserMappingConfig = Field(default_factory=UserMappingConfig)

    @field_validator("module")
    @classmethod
    def _builtin(cls, value: str) -> str:
        if value not in _MAPPING_PROVIDER_NAMES:
            raise ValueError(
                f"{value!r}: custom mapping provider modules are not supported by Ranvier; "
                f"remove `module` (the built-in {JINJA_MAPPING_PROVIDER} takes Jinja2 "
                "templates in `config`: localpart_template, display_name_template, ...)"
            )
        return value


class AttributeRequirement(_Section):
    """A claim the user must have: equal to `value`, or to one of `one_of`. A claim that is
    a list passes when any of its entries does."""

    attribute: str
    value: str | None = None
    one_of: list[str] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> AttributeRequirement:
        if (self.value is None) == (self.one_of is None):
            raise ValueError(f"{self.attribute}: set exactly one of `value` and `one_of`")
        return self

    def allowed(self) -> list[str]:
        return [self.value] if self.value is not None else list(self.one_of or ())


ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


class OidcProviderConfig(_Section):
    """One entry of `oidc_providers`."""

    idp_id: str = "oidc"
    idp_name: str = "OIDC"
    idp_icon: str | None = None
    idp_brand: str | None = None
    issuer: str
    discover: bool = True
    client_id: str
    client_secret: str | None = None
    client_secret_path: str | None = None
    client_secret_jwt_key: dict[str, Any] | None = None
    client_auth_method: ClientAuthMethod = "client_secret_basic"
    pkce_method: Literal["auto", "always", "never"] = "auto"
    scopes: list[str] = Field(default_factory=lambda: ["openid"])
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None
    additional_authorization_parameters: dict[str, str] = Field(default_factory=dict)
    skip_verification: bool = False
    user_profile_method: Literal["auto", "userinfo_endpoint"] = "auto"
    allow_existing_users: bool = False
    enable_registration: bool = True
    user_mapping_provider: UserMappingProvider = Field(default_factory=UserMappingProvider)
    attribute_requirements: list[AttributeRequirement] = Field(default_factory=list)
    backchannel_logout_enabled: bool = False
    backchannel_logout_ignore_sub: bool = False

    @field_validator("idp_id")
    @classmethod
    def _idp_id(cls, value: str) -> str:
        if not _IDP_ID.fullmatch(value):
            raise ValueError(
                f"idp_id {value!r} may only contain letters, digits and . _ ~ - "
                "(it appears in URLs and in the database)"
            )
        if len(value) > IDP_ID_MAX_LENGTH:
            raise ValueError(f"idp_id may be at most {IDP_ID_MAX_LENGTH} characters long")
        return value

    @field_validator("idp_brand")
    @classmethod
    def _brand(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 255 or not _BRAND.fullmatch(value)):
            raise ValueError(
                f"idp_brand {value!r} must be lower case letters, digits and . _ - "
                "(such as github or org.example.sso)"
            )
        return value

    @field_validator("idp_icon")
    @classmethod
    def _icon(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"mxc://[^/]+/[^/]+", value):
            raise ValueError(
                f"idp_icon {value!r} must be an mxc:// URI (upload the image to this "
                "server's media repository and use its content URI)"
            )
        return value

    @field_validator("client_secret_path")
    @classmethod
    def _secret_path(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_absolute():
            raise ValueError(f"client_secret_path {value!r} must be an absolute path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OidcProviderConfig:
        where = f"provider {self.idp_id!r}"
        issuer = urlparse(self.issuer)
        if issuer.scheme not in ("http", "https") or not issuer.netloc:
            raise ValueError(f"{where}: issuer {self.issuer!r} is not an http(s) URL")
        if issuer.scheme != "https" and not self.skip_verification:
            raise ValueError(
                f"{where}: issuer {self.issuer!r} must use https; for a provider on your own "
                "machine during testing, set skip_verification: true"
            )
        if self.client_secret_jwt_key is not None:
            raise ValueError(
                f"{where}: client_secret_jwt_key (signing a client assertion) is not "
                "supported by Ranvier yet; use client_secret or client_secret_path"
            )
        if self.client_secret is not None and self.client_secret_path is not None:
            raise ValueError(f"{where}: set either client_secret or client_secret_path, not both")
        if self.client_secret_path is not None:
            try:
                secret = Path(self.client_secret_path).read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"{where}: cannot read client_secret_path {self.client_secret_path!r}: "
                    f"{exc.strerror}"
                ) from exc
            object.__setattr__(self, "client_secret", secret)
        if self.client_auth_method != "none" and self.client_secret is None:
            raise ValueError(
                f"{where}: client_secret (or client_secret_path) is needed with "
                f"client_auth_method {self.client_auth_method}"
            )
        if not self.discover:
            missing = [
                key
                for key, value in (
                    ("authorization_endpoint", self.authorization_endpoint),
                    ("token_endpoint", self.token_endpoint),
                )
                if value is None
            ]
            if self.uses_userinfo and self.userinfo_endpoint is None:
                missing.append("userinfo_endpoint")
            if not self.uses_userinfo and self.jwks_uri is None:
                missing.append("jwks_uri")
            if missing:
                raise ValueError(
                    f"{where}: with discover: false, set {', '.join(missing)} "
                    "(or turn discovery on)"
                )
        for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
            endpoint = getattr(self, key)
            if endpoint is None:
                continue
            scheme = urlparse(endpoint).scheme
            if scheme not in ("http", "https") or (
                scheme != "https" and not self.skip_verification
            ):
                raise ValueError(f"{where}: {key} {endpoint!r} must be an https URL")
        if self.backchannel_logout_enabled and "openid" not in self.scopes:
            raise ValueError(
                f"{where}: backchannel_logout_enabled needs the openid scope: the session a "
                "logout names is the one the ID token gave at sign-in"
            )
        return self

    @property
    def uses_userinfo(self) -> bool:
        """Claims come from the userinfo endpoint rather than the ID token: when asked, or
        when the `openid` scope (and so an ID token) is not requested."""
        return self.user_profile_method == "userinfo_endpoint" or "openid" not in self.scopes

    @property
    def auth_provider_id(self) -> str:
        """The ID the provider is known by to clients and in user_external_ids: as in
        Synapse, `oidc-` before the configured ID, but for the one named `oidc`, kept from
        Synapse's older single-provider `oidc_config`."""
        return self.idp_id if self.idp_id == "oidc" else f"oidc-{self.idp_id}"

    def login_flow_entry(self) -> dict[str, str]:
        """The provider in GET /login's m.login.sso flow (spec: `identity_providers`)."""
        entry = {"id": self.auth_provider_id, "name": self.idp_name}
        if self.idp_icon is not None:
            entry["icon"] = self.idp_icon
        if self.idp_brand is not None:
            entry["brand"] = self.idp_brand
        return entry


def _unique_ids(providers: list[OidcProviderConfig]) -> list[OidcProviderConfig]:
    seen: set[str] = set()
    for provider in providers:
        if provider.auth_provider_id in seen:
            raise ValueError(
                f"idp_id {provider.idp_id!r} is used by more than one provider; give each its own"
            )
        seen.add(provider.auth_provider_id)
    return providers


OidcProviders = Annotated[
    list[OidcProviderConfig],
    # `oidc_providers:` with nothing after it, as a commented-out example leaves it
    BeforeValidator(lambda value: [] if value is None else value),
    AfterValidator(_unique_ids),
]


class SsoConfig(_Section):
    """Synapse's `sso` section."""

    # client URLs (prefixes) sent to without first asking the user to confirm, as Synapse
    # does, for clients the admin trusts; any other client gets a confirmation page, so a
    # phishing link cannot silently hand an access token to an attacker's site
    client_whitelist: list[str] = Field(default_factory=list)
    # on each sign-in, take the display name from the provider again
    update_profile_information: bool = False

    @field_validator("client_whitelist")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for entry in value:
            if urlparse(entry).scheme not in ("http", "https"):
                raise ValueError(f"client_whitelist: {entry!r} is not an http(s) URL prefix")
        return value


# `sso:` with nothing after it reads as the defaults
SsoSection = Annotated[SsoConfig, BeforeValidator(lambda value: {} if value is None else value)]
