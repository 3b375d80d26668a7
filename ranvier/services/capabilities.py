"""What GET /capabilities tells clients they may do (spec: "Capabilities negotiation"),
from the configuration."""

from __future__ import annotations

from typing import Any

from ranvier.config.models import HomeserverConfig
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS


def capabilities(config: HomeserverConfig) -> dict[str, Any]:
    password = config.password_config
    # "only_for_reauth" still lets users confirm and change their password, as in Synapse
    can_change_password = password.enabled is not False and password.localdb_enabled
    disallowed_profile_fields = [
        name
        for name, enabled in (
            ("displayname", config.enable_set_displayname),
            ("avatar_url", config.enable_set_avatar_url),
        )
        if not enabled
    ]
    profile_fields: dict[str, Any] = {"enabled": True}
    if disallowed_profile_fields:
        profile_fields["disallowed"] = disallowed_profile_fields
    return {
        "m.change_password": {"enabled": can_change_password},
        "m.room_versions": {
            "default": config.default_room_version,
            "available": {identifier: "stable" for identifier in KNOWN_ROOM_VERSIONS},
        },
        "m.set_displayname": {"enabled": config.enable_set_displayname},
        "m.set_avatar_url": {"enabled": config.enable_set_avatar_url},
        "m.profile_fields": profile_fields,
        "m.3pid_changes": {"enabled": config.enable_3pid_changes},
        # POST /login/get_token: signing in another device with a token from this one
        "m.get_login_token": {"enabled": config.login_via_existing_session.enabled},
    }
