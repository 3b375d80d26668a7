"""Process-wide logging from `log_config` (a YAML dictConfig), with request IDs.

Synapse's log configs work unchanged: config/log_config.py points the Synapse classes they
name at the equivalents here.
"""

from __future__ import annotations

import json
import logging
import logging.config
import logging.handlers
import threading
from pathlib import Path
from typing import Any

from ranvier.config.log_config import LogConfigError, read_log_config
from ranvier.http.logging import RequestIdFilter, current_request_id

# what a LogRecord carries whatever the log config says; JSON output leaves these out
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def setup_logging(log_config: str | None, log_file: Path | None = None) -> None:
    """Use the admin's dictConfig if given; otherwise INFO to stderr (or `log_file`).

    Raises LogConfigError, naming the file and the fix, for a config that cannot be used."""
    _record_request_ids()
    if log_config is not None:
        config = read_log_config(Path(log_config))
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            # dictConfig says which handler, formatter or filter failed and keeps the
            # cause (an unwritable file, say) chained for process.startup_problem
            raise LogConfigError(f"log_config: {log_config!r}: {exc}") from exc
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


def _record_request_ids() -> None:
    """Every record carries `request` from when it is made, so `%(request)s` works in any
    format of any handler (an admin's config need not add a filter), and a buffered record
    keeps the ID of the request that wrote it."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "adds_request_id", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request = current_request_id.get()
        return record

    make_record.adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


class RequestContextFilter(logging.Filter):
    """Stands in for Synapse's LoggingContextFilter: records already carry the request ID
    (see _record_request_ids), so it lets every record through unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request"):
            record.request = current_request_id.get()
        return True


class PeriodicallyFlushingMemoryHandler(logging.handlers.MemoryHandler):
    """Synapse's buffering handler: records wait in memory and go to `target` when
    `capacity` of them wait, at once when one is at `flushLevel` or above, and at the
    latest `period` seconds after the last flush, so a quiet server's lines still appear."""

    def __init__(
        self,
        capacity: int,
        # Synapse's (and MemoryHandler's) argument names, which dictConfig passes
        flushLevel: int = logging.ERROR,
        target: logging.Handler | None = None,
        flushOnClose: bool = True,
        period: float = 5.0,
    ) -> None:
        super().__init__(capacity, flushLevel, target, flushOnClose)
        self._period = period
        self._closed = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_periodically, name="log-flush", daemon=True
        )
        self._flusher.start()

    def _flush_periodically(self) -> None:
        while not self._closed.wait(self._period):
            self.flush()

    def close(self) -> None:
        self._closed.set()
        super().close()


class JsonFormatter(logging.Formatter):
    """One JSON object a line, as Synapse's JsonFormatter writes: the message as `log`, the
    logger as `namespace`, `level`, `request`, and any extra fields the record carries."""

    with_time = False

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "log": record.getMessage(),
            "namespace": record.name,
            "level": record.levelname,
        }
        if self.with_time:
            entry["time"] = round(record.created, 2)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TerseJsonFormatter(JsonFormatter):
    """Synapse's TerseJsonFormatter: JsonFormatter with the record's `time` (epoch seconds)."""

    with_time = True


def reopen_log_files() -> int:
    """Close and reopen every log file a handler writes (SIGHUP, after logrotate renamed
    them), so writing goes on in a new file at the configured path; returns how many. A
    file that cannot be reopened keeps its old stream; the others are still reopened, then
    the first failure is raised."""
    handlers: dict[int, logging.FileHandler] = {}
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for each in loggers:
        for handler in getattr(each, "handlers", ()):
            # a buffering handler (Synapse's log config has one) writes through its target
            for writer in (handler, getattr(handler, "target", None)):
                if isinstance(writer, logging.FileHandler):
                    handlers[id(writer)] = writer
    failure: OSError | None = None
    for handler in handlers.values():
        handler.acquire()
        try:
            # a handler made with delay=True opens its file at its first line anyway
            if handler.stream is not None:
                reopened = handler._open()
                handler.stream.close()
                handler.stream = reopened
        except OSError as exc:
            failure = failure or exc
        finally:
            handler.release()
    if failure is not None:
        raise failure
    return len(handlers)
