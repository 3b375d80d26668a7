"""`python -m bench.fuzz`: fuzz every Client-Server operation of a Ranvier it starts.

    .venv/bin/python -m bench.fuzz --engine sqlite --examples 100
    .venv/bin/python -m bench.fuzz --engine postgres --examples 100 --only '/rooms/' --seed 7
    .venv/bin/python -m bench.fuzz --url http://127.0.0.1:8008 --config homeserver.yaml

Prints per-operation counts and every distinct server error with the traceback the server
logged for it; `--json FILE` keeps all of it. Exits 1 if there was any server error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.fuzz.inputs import FuzzRequest
from bench.fuzz.runner import MODES, Fuzzer, report
from bench.fuzz.wire import Answer
from bench.fuzz.world import open_world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--examples", type=int, default=50, help="cases per operation and mode (default 50)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", action="append", help="regex on 'METHOD /path'; repeatable")
    parser.add_argument("--mode", choices=sorted(MODES), action="append", help="default: both")
    parser.add_argument(
        "--max-rate", type=float, default=150.0, help="requests per second at most (0: no cap)"
    )
    parser.add_argument("--url", help="fuzz a server already running here instead")
    parser.add_argument("--config", type=Path, help="its homeserver.yaml, to make an admin")
    parser.add_argument("--log", type=Path, help="its log file, for tracebacks")
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--trace", type=Path, help="write every request and answer here")
    parser.add_argument("--keep", action="store_true", help="keep the server's directory")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.url:
        return fuzz(args, args.url, args.config, args.log, None, progress)

    from bench.fuzz.server import start_ranvier
    from bench.servers import Database

    database = Database(args.engine, args.postgres_url)
    directory = Path(tempfile.mkdtemp(prefix="ranvier-fuzz-"))
    server, config_path = start_ranvier(directory, database)
    print(f"ranvier on {args.engine} at {server.url}, files in {directory}", file=sys.stderr)
    try:
        return fuzz(
            args,
            server.url,
            config_path,
            server.log_path,
            lambda: server.process.poll() is None,
            progress,
        )
    finally:
        server.stop()
        database.drop_all()
        if not args.keep:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)


def fuzz(args, url, config_path, log_path, alive, progress) -> int:  # type: ignore[no-untyped-def]
    world = open_world(url, config_path)
    trace_file = open(args.trace, "w") if args.trace else None  # noqa: SIM115

    def trace(request: FuzzRequest, answer: Answer) -> None:
        assert trace_file is not None
        sent = request.describe(200)
        print(
            f"{answer.status} {sent['request']} auth={sent['auth']} body={sent['body']!r}",
            file=trace_file,
        )
        print(f"    -> {answer.body[:200]!r} {answer.error}", file=trace_file)

    fuzzer = Fuzzer(
        world,
        log_path,
        examples=args.examples,
        seed=args.seed,
        max_rate=args.max_rate,
        server_alive=alive,
        progress=progress,
        trace=trace if trace_file is not None else None,
    )
    try:
        results = fuzzer.run(only=args.only, modes=args.mode or list(MODES))
    finally:
        if trace_file is not None:
            trace_file.close()
    print(report(results, fuzzer.operations))
    if args.json:
        args.json.write_text(json.dumps(results.to_json(), indent=1, default=str))
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
