"""Micro-benchmark of one rate-limit check with many clients remembered.

Run: .venv/bin/python -m bench.ratelimit_bench   (prints medians; not a test)

Fills one limiter with N distinct client addresses that each just spent a token (a flood
from many IPs: none of the buckets is full, so none may be forgotten yet), then times
checks by addresses already known and by new ones. Before the buckets were kept in order of
last use (issue 14), every check above 10,000 keys scanned them all: 0.53 ms a check at
10,000 keys and 5.6 ms at 100,000 on the machine docs/performance.md describes.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
import tracemalloc

from ranvier.config.models import RatelimitSettings
from ranvier.errors import MatrixError
from ranvier.http.ratelimit import MAX_KEYS, Ratelimiter

SIZES = (1_000, 10_000, 100_000)
SAMPLES = 20_000


def address(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def median_us(limiter: Ratelimiter, keys: list[str]) -> float:
    times = []
    for key in keys:
        start = time.perf_counter()
        with contextlib.suppress(MatrixError):
            limiter.check(key)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    # the cap's "forgot N clients" warning is expected here
    logging.getLogger("ranvier.http.ratelimit").setLevel(logging.ERROR)
    settings = RatelimitSettings(per_second=0.2, burst_count=10)  # rc_message's defaults
    for size in SIZES:
        tracemalloc.start()
        limiter = Ratelimiter(settings, max_keys=max(size, MAX_KEYS))
        for i in range(size):
            limiter.check(address(i))
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        known = median_us(limiter, [address(i * 7919 % size) for i in range(SAMPLES)])
        new = median_us(limiter, [address(size + i) for i in range(SAMPLES)])
        print(
            f"{size:>7} keys: {known:.2f} us a check by a known client, {new:.2f} us by a new"
            f" one; {held / size:.0f} bytes a bucket"
        )
    # at the cap every new client makes the least recently seen one be forgotten
    limiter = Ratelimiter(settings)
    for i in range(MAX_KEYS):
        limiter.check(address(i))
    at_cap = median_us(limiter, [address(MAX_KEYS + i) for i in range(SAMPLES)])
    print(f"at the cap ({MAX_KEYS} keys): {at_cap:.2f} us a check by a new client")


if __name__ == "__main__":
    main()
