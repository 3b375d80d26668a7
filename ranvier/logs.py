"""Process-wide logging from `log_config` (a YAML dictConfig), with request IDs."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path

import yaml

from ranvier.http.logging import RequestIdFilter


def setup_logging(log_config: str | None, log_file: Path | None = None) -> None:
    """Use the admin's dictConfig if given; otherwise INFO to stderr (or `log_file`)."""
    if log_config is not None:
        logging.config.dictConfig(yaml.safe_load(Path(log_config).read_text()))
        if log_file is None:
            return
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file is not None else logging.StreamHandler()
    )
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(request)s - %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    if log_config is None:
        root.setLevel(logging.INFO)
