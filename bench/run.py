"""Race Ranvier against Synapse: start each in turn (A B A B), run every scenario, print a table.

Run: make bench   or   .venv/bin/python -m bench.run [--only ranvier] [--postgres] [--quick]
With --federation the scenarios are federation's instead (bench/federation.py): joining a
scripted remote server's room of 1,000 members, then inbound /send throughput. With
--sliding-sync they are bench/sliding_sync.py's: a user in 1,000 rooms syncing a room list.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from bench.load import SCENARIOS, Figure, Sizes, run_against
from bench.servers import Database, RunningServer, start_ranvier, start_synapse

IDLE_SETTLE_SECONDS = 3.0
Starter = Callable[[Path, Database], RunningServer]
Scenarios = Callable[[RunningServer], dict[str, Figure]]


def client_scenarios(args: argparse.Namespace) -> Scenarios:
    sizes = Sizes.quick() if args.quick else Sizes()
    return lambda server: asyncio.run(run_against(server.url, sizes, args.scenario, log=print))


def measure(
    name: str, start: Starter, database: Database, scenarios: Scenarios
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
            started = time.monotonic()
            figures |= scenarios(server)
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


@contextmanager
def scenarios_and_servers(
    args: argparse.Namespace,
) -> Iterator[tuple[Scenarios, list[tuple[str, Starter]]]]:
    """What to run and on which servers; with --federation, the scripted remote they all
    join runs for the whole race."""
    ranvier: Starter = start_ranvier
    synapse: Starter = start_synapse
    if args.sliding_sync:
        from bench.sliding_sync import SlidingSyncSizes, run_sliding_sync

        sliding = SlidingSyncSizes.quick() if args.quick else SlidingSyncSizes()
        scenarios = partial(run_sliding_sync, sizes=sliding, profile_dir=args.profile)
        yield scenarios, _chosen(args, ranvier, synapse)
        return
    if not args.federation:
        yield client_scenarios(args), _chosen(args, ranvier, synapse)
        return
    from bench.federation import FederationSizes, ranvier_config, run_federation, synapse_config
    from bench.remote_room import RemoteRoomServer

    sizes = FederationSizes.quick() if args.quick else FederationSizes()
    if args.pushed_pdus:
        sizes.pushed_pdus = args.pushed_pdus
    with (
        tempfile.TemporaryDirectory(prefix="bench-remote-") as directory,
        RemoteRoomServer.running(Path(directory), sizes.members) as remote,
    ):
        print(f"remote room {remote.room_id}: {sizes.members} members", flush=True)
        ranvier = partial(start_ranvier, extra=ranvier_config(remote))
        synapse = partial(start_synapse, extra=synapse_config(remote))
        yield partial(run_federation, remote=remote, sizes=sizes), _chosen(args, ranvier, synapse)


def _chosen(
    args: argparse.Namespace, ranvier: Starter, synapse: Starter
) -> list[tuple[str, Starter]]:
    servers = []
    if args.only != "synapse":
        servers.append(("ranvier", ranvier))
    if args.only != "ranvier":
        servers.append(("synapse", synapse))
    return servers


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
    parser.add_argument(
        "--federation",
        action="store_true",
        help="the federation scenarios (a remote room of 1,000 members, inbound /send)",
    )
    parser.add_argument(
        "--sliding-sync",
        action="store_true",
        help="the sliding sync scenarios (a user in 1,000 rooms, MSC4186)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="with --sliding-sync: py-spy Ranvier after the timed runs, into this directory",
    )
    parser.add_argument(
        "--pushed-pdus", type=int, help="with --federation: PDUs pushed (default 5,000)"
    )
    args = parser.parse_args()

    database = Database("postgres" if args.postgres else "sqlite", args.postgres_url)
    if args.only != "ranvier":
        from bench.synapse_setup import ensure_synapse

        print("Synapse", ensure_synapse(args.synapse_version), flush=True)
    with scenarios_and_servers(args) as (scenarios, servers):
        rounds: dict[str, list[dict[str, Figure]]] = {name: [] for name, _ in servers}
        for number in range(1, args.rounds + 1):
            for name, start in servers:
                print(f"round {number}/{args.rounds}", flush=True)
                rounds[name].append(measure(name, start, database, scenarios))
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
