"""Race Ranvier against Synapse: start each in turn (A B A B), run every scenario, print a table.

Run: make bench   or   .venv/bin/python -m bench.run [--only ranvier] [--postgres] [--quick]
Each server gets a fresh data directory (and a fresh PostgreSQL database) per round; figures are
the median over rounds. Everything listens on 127.0.0.1; the servers are stopped by their PID.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.load import SCENARIOS, Figure, Sizes, run_against
from bench.servers import Database, RunningServer, start_ranvier, start_synapse

IDLE_SETTLE_SECONDS = 3.0
Starter = Callable[[Path, Database], RunningServer]


def measure(
    name: str, start: Starter, database: Database, args: argparse.Namespace
) -> dict[str, Figure]:
    """One server, one round: start-up, idle RSS, the scenarios, peak RSS."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as directory:
        print(f"{name}: starting", flush=True)
        server = start(Path(directory), database)
        try:
            time.sleep(IDLE_SETTLE_SECONDS)
            idle_kib, _ = server.rss_kib()
            figures: dict[str, Figure] = {
                "start-up to first /versions": Figure(server.startup_seconds, "s", "lower"),
                "idle RSS": Figure(idle_kib / 1024, "MiB", "lower"),
            }
            sizes = Sizes.quick() if args.quick else Sizes()
            started = time.monotonic()
            figures |= asyncio.run(run_against(server.url, sizes, args.scenario, log=print))
            print(f"{name}: scenarios took {time.monotonic() - started:.0f}s", flush=True)
            _, peak_kib = server.rss_kib()
            figures["peak RSS"] = Figure(peak_kib / 1024, "MiB", "lower")
            return figures
        finally:
            server.stop()
            database.drop_all()


def combine(rounds: list[dict[str, Figure]]) -> dict[str, Figure]:
    """The median of each figure over the rounds that measured it."""
    combined: dict[str, Figure] = {}
    for key in rounds[0]:
        values = [v for r in rounds if key in r and (v := r[key].value) is not None]
        first = rounds[0][key]
        value = statistics.median(values) if values else None
        combined[key] = Figure(value, first.unit, first.better, first.note)
    return combined


def _format(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    if figure.value is None:
        return f"n/a ({figure.note})" if figure.note else "n/a"
    value = figure.value
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {figure.unit}"


def table(results: dict[str, dict[str, Figure]]) -> str:
    """A Markdown table: each figure for each server, the ratio, and who wins by how much."""
    ranvier, synapse = results.get("ranvier", {}), results.get("synapse", {})
    keys = list(ranvier or synapse)
    keys += [k for k in synapse if k not in keys]
    rows = [
        "| Scenario | Ranvier | Synapse | Ranvier / Synapse | Ranvier is |",
        "|---|---:|---:|---:|---|",
    ]
    for key in keys:
        r, s = ranvier.get(key), synapse.get(key)
        ratio, verdict = "-", "-"
        if r and s and r.value and s.value:
            ratio_value = r.value / s.value
            ratio = f"{ratio_value:.2f}"
            gain = ratio_value if r.better == "higher" else 1 / ratio_value
            verdict = f"{gain:.1f}x better" if gain >= 1 else f"{1 / gain:.1f}x worse"
        rows.append(f"| {key} | {_format(r)} | {_format(s)} | {ratio} | {verdict} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["ranvier", "synapse"])
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--postgres", action="store_true", help="both on PostgreSQL")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a role that may create databases",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--synapse-version", help="install this matrix-synapse release")
    args = parser.parse_args()

    database = Database("postgres" if args.postgres else "sqlite", args.postgres_url)
    servers: list[tuple[str, Starter]] = []
    if args.only != "synapse":
        servers.append(("ranvier", start_ranvier))
    if args.only != "ranvier":
        from bench.synapse_setup import ensure_synapse

        print("Synapse", ensure_synapse(args.synapse_version), flush=True)
        servers.append(("synapse", start_synapse))

    rounds: dict[str, list[dict[str, Figure]]] = {name: [] for name, _ in servers}
    for number in range(1, args.rounds + 1):
        for name, start in servers:
            print(f"round {number}/{args.rounds}", flush=True)
            rounds[name].append(measure(name, start, database, args))
    results = {name: combine(figures) for name, figures in rounds.items()}

    from ranvier import __version__

    print()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {database.engine}, "
        f"median of {args.rounds} round(s), Ranvier {__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}"
    )
    print(table(results))


if __name__ == "__main__":
    main()
