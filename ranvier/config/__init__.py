"""homeserver.yaml: typed models, loading with clear refusals, and generation."""

from ranvier.config.errors import ConfigError
from ranvier.config.loader import load_config
from ranvier.config.models import DatabaseConfig, HomeserverConfig, Listener

__all__ = ["ConfigError", "DatabaseConfig", "HomeserverConfig", "Listener", "load_config"]
