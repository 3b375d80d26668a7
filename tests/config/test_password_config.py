"""password_config.argon2 in homeserver.yaml: accepted costs load, nonsense is refused at
start-up naming the key, the bounds and a sensible value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ranvier.config import load_config
from tests.config.files import refusal, write_config


def test_defaults_suit_a_small_machine(generated: Path) -> None:
    cost = load_config(generated).password_config.argon2
    assert (cost.time_cost, cost.memory_cost, cost.parallelism) == (2, 19456, 1)


@pytest.mark.parametrize(
    ("memory_cost", "kib"), [(65536, 65536), ("64M", 65536), ("1G", 1048576), ("2048K", 2048)]
)
def test_memory_cost_in_kib_or_as_a_size(
    generated: Path,
    memory_cost: int | str,
    kib: int,
) -> None:
    path = write_config(generated, password_config={"argon2": {"memory_cost": memory_cost}})
    assert load_config(path).password_config.argon2.memory_cost == kib


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        ({"time_cost": 0}, "password_config.argon2.time_cost: time_cost must be from 1 to 100"),
        ({"time_cost": 1000}, "password_config.argon2.time_cost: time_cost must be from 1 to"),
        ({"memory_cost": 512}, "password_config.argon2.memory_cost: memory_cost must be from 1M"),
        ({"memory_cost": "64G"}, "memory_cost must be from 1M to 4G"),
        ({"memory_cost": "lots"}, "'lots' is not a size; write KiB (19456) or a size"),
        ({"parallelism": 0}, "password_config.argon2.parallelism: parallelism must be from 1"),
        ({"parallelism": 65}, "parallelism must be from 1 to 64"),
        ({"memory": "64M"}, "password_config.argon2.memory: unknown option"),
    ],
)
def test_nonsense_costs_are_refused(
    generated: Path,
    cost: dict[str, Any],
    message: str,
) -> None:
    assert message in refusal(write_config(generated, password_config={"argon2": cost}))
