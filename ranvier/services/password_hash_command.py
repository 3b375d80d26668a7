"""`ranvier hash-password`: a password hash made exactly as the server makes one.

Like Synapse's hash_password, the config file is optional and only its password settings
are read (a whole homeserver.yaml, or a file with just `password_config`), so the command
works on a machine that has no full configuration.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from pydantic import ValidationError

from ranvier.config import ConfigError
from ranvier.config.models import PasswordConfig
from ranvier.services.passwords import PasswordHasher


def password_config_of(config_file: Path | None) -> PasswordConfig:
    if config_file is None:
        return PasswordConfig()
    try:
        raw = yaml.safe_load(config_file.read_text())
    except OSError as exc:
        raise ConfigError([f"cannot read it: {exc.strerror}"], str(config_file)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(config_file)) from None
    section = raw.get("password_config") if isinstance(raw, dict) else None
    try:
        return PasswordConfig.model_validate(section or {})
    except ValidationError as exc:
        problems = [
            f"password_config.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ConfigError(problems, str(config_file)) from None


def hash_password(password: str, config_file: Path | None) -> str:
    hasher = PasswordHasher(password_config_of(config_file))
    return asyncio.run(hasher.hash(password))
