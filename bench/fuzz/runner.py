"""Running the fuzz: every operation, positive and negative cases, one request at a time.

Requests go out one after another on one connection, so whatever the server logs between
two answers belongs to the request in between: each 5xx (and each broken connection) is
recorded with the request and the traceback the server logged for it. Errors the server
logs under a request that did not fail are kept too (`logged`), since a 5xx is only one way
a bug shows.
"""

from __future__ import annotations

import collections
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException, Unsatisfiable

from bench.fuzz.admin import ADMIN, ADMIN_OPERATIONS, admin_paths
from bench.fuzz.inputs import FuzzRequest, RequestMaker
from bench.fuzz.spec import Operation, load_operations
from bench.fuzz.wire import CONNECTION_ERROR, TIMED_OUT, Answer
from bench.fuzz.world import World

MODES = {
    "positive": schemathesis.GenerationMode.POSITIVE,
    "negative": schemathesis.GenerationMode.NEGATIVE,
}
# answers the spec itself gives with a 5xx status: not server errors; 502 is what a
# lookup on another server answers when that server is out of reach, as every server
# named in the fuzz's world is
EXPECTED_5XX = {(504, "M_NOT_YET_UPLOADED"), (502, "M_UNKNOWN")}
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_LOG_ERROR = re.compile(r" - (ERROR|CRITICAL) - ")
_FRAME = re.compile(r'File "([^"]*ranvier/[^"]+)", line (\d+), in (\S+)')


class ServerLog:
    """The server's log file, read on from where it was last read."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = path.stat().st_size if path is not None and path.exists() else 0

    def errors(self) -> list[str]:
        """The ERROR and CRITICAL entries (with their tracebacks) written since last asked."""
        if self.path is None:
            return []
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        # only whole lines: a line being written is read next time
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        blocks: list[list[str]] = []
        current: list[str] | None = None
        for line in chunk[:end].decode("utf-8", "replace").splitlines():
            if _LOG_LINE.match(line):
                current = [line] if _LOG_ERROR.search(line) else None
                if current is not None:
                    blocks.append(current)
            elif current is not None:
                current.append(line)
        return ["\n".join(block) for block in blocks]


def signature(operation: str, status: int, errcode: str | None, traceback: str) -> str:
    """What makes two failures the same bug: the exception and where in Ranvier it was raised
    (whichever operation it came through), else the operation and the answer."""
    frames = _FRAME.findall(traceback)
    exception = ""
    lines = traceback.splitlines()
    last_frame = max((i for i, line in enumerate(lines) if _FRAME.search(line)), default=-1)
    # the exception is the first unindented line after the innermost frame of Ranvier's
    for line in lines[last_frame + 1 :]:
        if line and not line[0].isspace():
            exception = line.split(":", 1)[0]
            break
    if frames:
        file, _, function = frames[-1]
        where = f"{file.split('ranvier/', 1)[-1]}:{function}"
        return f"{exception} at {where}"
    return f"{operation} | {status} {errcode or ''}".strip()


@dataclass
class Failure:
    signature: str
    status: int
    request: dict[str, Any]
    answer: str
    traceback: str
    count: int = 1
    operations: collections.Counter[str] = field(default_factory=collections.Counter)


@dataclass
class Results:
    requests: int = 0
    seconds: float = 0.0
    per_operation: dict[str, collections.Counter[str]] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    # errors logged while answering a request that did not fail
    logged: dict[str, Failure] = field(default_factory=dict)
    timeouts: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(f.count for f in self.failures.values())

    def count(self, operation: str, bucket: str) -> None:
        self.per_operation.setdefault(operation, collections.Counter())[bucket] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "server_errors": self.server_errors,
            "per_operation": {k: dict(v) for k, v in sorted(self.per_operation.items())},
            "failures": [vars(f) for f in self.failures.values()],
            "logged_without_failure": [vars(f) for f in self.logged.values()],
            "timeouts": self.timeouts,
            "skipped": self.skipped,
        }


def _bucket(answer: Answer) -> str:
    if answer.status == CONNECTION_ERROR:
        return "conn"
    if answer.status == TIMED_OUT:
        return "timeout"
    if answer.status in (404, 405) and answer.errcode == "M_UNRECOGNIZED":
        return "unrecognized"
    if answer.status >= 500:
        expected = (answer.status, answer.errcode) in EXPECTED_5XX
        return f"{answer.status} {answer.errcode}" if expected else "5xx"
    return str(answer.status)


class Fuzzer:
    def __init__(
        self,
        world: World,
        log_path: Path | None,
        *,
        examples: int,
        seed: int,
        max_rate: float = 0.0,
        refresh_every: int = 400,
        server_alive: Callable[[], bool] | None = None,
        progress: Callable[[str], None] | None = None,
        trace: Callable[[FuzzRequest, Answer], None] | None = None,
        admin: bool = True,
    ) -> None:
        self.world = world
        self.log = ServerLog(log_path)
        self.examples = examples
        self.seed = seed
        self.min_interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self.refresh_every = refresh_every
        self.server_alive = server_alive
        self.progress = progress
        self.trace = trace
        self.maker = RequestMaker(world)
        self.results = Results()
        self._last_sent = 0.0
        self._since_refresh = 0
        bundled, self.operations = load_operations()
        if admin:
            bundled = {**bundled, "paths": {**bundled["paths"], **admin_paths()}}
            self.operations += tuple(
                Operation(
                    method.upper(),
                    ADMIN + path,
                    "required",
                    ("accessTokenBearer",),
                    ("application/json",) if body is not None else (),
                )
                for method, path, _, body in ADMIN_OPERATIONS
            )
        self.schema = schemathesis.openapi.from_dict(bundled)
        self._schema_operations: dict[str, Any] = {}
        for result in self.schema.get_all_operations():
            # a definition schemathesis cannot read is an error in the copied spec: fail loudly
            operation = result.ok()  # type: ignore[union-attr]
            self._schema_operations[f"{operation.method.upper()} {operation.path}"] = operation

    def run(self, only: Iterable[str] | None = None, modes: Iterable[str] = MODES) -> Results:
        started = time.monotonic()
        patterns = [re.compile(p) for p in only or []]
        for operation in self.operations:
            if patterns and not any(p.search(operation.key) for p in patterns):
                continue
            for mode in modes:
                self.fuzz(operation, mode)
            if self.progress is not None:
                counts = self.results.per_operation.get(operation.key, collections.Counter())
                self.progress(f"{operation.key}: {dict(sorted(counts.items()))}")
        self.results.seconds += time.monotonic() - started
        return self.results

    def fuzz(self, operation: Operation, mode: str) -> None:
        schema_operation = self._schema_operations[operation.key]
        strategy = schema_operation.as_strategy(generation_mode=MODES[mode])

        @hypothesis.seed(zlib.crc32(f"{self.seed} {operation.key} {mode}".encode()))
        @settings(
            max_examples=self.examples,
            database=None,
            deadline=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        @hypothesis.given(case=strategy, data=st.data())
        def one(case: Any, data: Any) -> None:
            self.send(self.maker.make(operation, mode, case, data))

        try:
            one()
        except Unsatisfiable:
            # nothing breaks this operation's schema (no parameters, no body)
            self.results.skipped.append(f"{operation.key} ({mode}): no such cases")
        except HypothesisException as exc:
            self.results.skipped.append(f"{operation.key} ({mode}): {exc!r}"[:500])

    def send(self, request: FuzzRequest) -> Answer:
        if self.min_interval:
            wait = self._last_sent + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_sent = time.monotonic()
        answer = self.world.conn.send(
            request.method, request.target, request.body, request.headers, request.timeout
        )
        self.results.requests += 1
        if self.trace is not None:
            self.trace(request, answer)
        self.record(request, answer)
        self._since_refresh += 1
        if self._since_refresh >= self.refresh_every or (
            request.operation.key.endswith(("/logout/all", "/leave", "/deactivate"))
            and answer.status == 200
        ):
            self._since_refresh = 0
            self.world.refresh()
            self._attribute_background_errors()
        return answer

    def record(self, request: FuzzRequest, answer: Answer) -> None:
        key = request.operation.key
        self.results.count(key, _bucket(answer))
        errors = self.log.errors()
        errcode = answer.errcode
        failed = answer.status == CONNECTION_ERROR or (
            answer.status >= 500 and (answer.status, errcode) not in EXPECTED_5XX
        )
        if answer.status == TIMED_OUT:
            self.results.timeouts.append(request.describe())
        traceback = "\n\n".join(errors)
        if failed:
            if answer.status == CONNECTION_ERROR and self.server_alive and not self.server_alive():
                raise RuntimeError(f"the server died on {request.describe()}\n{traceback}")
            found = signature(key, answer.status, errcode, traceback)
            self._add(self.results.failures, found, request, answer, traceback)
        elif errors:
            for error in errors:
                if answer.status == 400 and "aiohttp.http_exceptions." in error:
                    # aiohttp refusing a malformed request line or header, logged at ERROR
                    continue
                found = signature(key, answer.status, errcode, error)
                self._add(self.results.logged, found, request, answer, error)

    def _add(
        self,
        into: dict[str, Failure],
        found: str,
        request: FuzzRequest,
        answer: Answer,
        traceback: str,
    ) -> None:
        if found not in into:
            text = answer.error or answer.body[:300].decode("utf-8", "replace")
            into[found] = Failure(found, answer.status, request.describe(), text, traceback, 0)
        into[found].count += 1
        into[found].operations[request.operation.key] += 1

    def _attribute_background_errors(self) -> None:
        for error in self.log.errors():
            found = signature("(background)", 0, None, error)
            if found in self.results.logged:
                self.results.logged[found].count += 1
            else:
                self.results.logged[found] = Failure(found, 0, {}, "", error)


def report(results: Results, operations: Iterable[Operation] | None = None) -> str:
    """Per-operation counts, then each distinct server error with its traceback."""
    lines = [
        f"{results.requests} requests in {results.seconds:.0f}s; "
        f"{results.server_errors} server errors, {len(results.failures)} distinct",
        "",
        f"{'operation':<72} {'sent':>5} {'2xx':>5} {'4xx':>5} {'404':>5} {'unrec':>5} "
        f"{'5xx':>4} other",
    ]
    keys = [op.key for op in operations] if operations else sorted(results.per_operation)
    never_answered: list[str] = []
    not_served: list[str] = []
    for key in keys:
        counts = results.per_operation.get(key)
        if not counts:
            continue
        total = sum(counts.values())
        ok = sum(v for k, v in counts.items() if k.startswith("2"))
        not_found = counts.get("404", 0)
        client = sum(v for k, v in counts.items() if k.startswith("4")) - not_found
        unrecognized = counts.get("unrecognized", 0)
        server = counts.get("5xx", 0) + counts.get("conn", 0)
        other = total - ok - client - not_found - unrecognized - server
        lines.append(
            f"{key:<72} {total:>5} {ok:>5} {client:>5} {not_found:>5} {unrecognized:>5} "
            f"{server:>4} {other}"
        )
        # requests refused before routing (a NUL in the path, a bad token) answer otherwise
        if ok == 0 and unrecognized * 2 > total:
            not_served.append(key)
        elif ok == 0:
            never_answered.append(key)
    lines += ["", f"operations not served (mostly M_UNRECOGNIZED, never 2xx: {len(not_served)}):"]
    lines += [f"  {key}" for key in not_served]
    lines += ["", f"operations served but never answered 2xx ({len(never_answered)}):"]
    lines += [f"  {key}" for key in never_answered]
    for title, found in (
        ("SERVER ERRORS", results.failures),
        ("ERRORS LOGGED WITHOUT A 5xx", results.logged),
    ):
        lines += ["", f"== {title}: {len(found)} distinct"]
        for failure in sorted(found.values(), key=lambda f: -f.count):
            lines += [
                "",
                f"-- {failure.signature}  (x{failure.count}, status {failure.status})",
                f"   through: {', '.join(sorted(failure.operations)) or '-'}",
                f"   request: {failure.request}",
                f"   answer:  {failure.answer}",
            ]
            lines += ["   " + line for line in failure.traceback.splitlines()[-40:]]
    if results.timeouts:
        lines += ["", f"== TIMED OUT: {len(results.timeouts)}"]
        lines += [f"   {t['request'][:200]}" for t in results.timeouts[:20]]
    return "\n".join(lines)
