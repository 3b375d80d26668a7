"""Request IDs in every log line written while a request is handled."""

from __future__ import annotations

import logging
from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds `%(request)s` to records: the ID of the request being handled, or '-'."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request = current_request_id.get()
        return True
