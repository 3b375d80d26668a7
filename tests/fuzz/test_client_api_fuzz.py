"""A short, seeded fuzz of every Client-Server API operation (bench/fuzz), on both engines.

The same fuzzer as `make fuzz`, with a fixed seed and a few cases per operation and mode, so
that a change that makes some request answer a 5xx, or break the connection, fails here with
the request and the server's traceback. docs/testing.md says how to run the large one.
"""

from __future__ import annotations

from bench.fuzz.runner import Fuzzer, report
from bench.fuzz.server import FUZZ_CONFIG
from bench.fuzz.world import open_world
from tests.integration.conftest import module_database, module_server
from tests.integration.homeserver import RunningServer

__all__ = ["module_database"]  # the fixture module_server's servers use

SEED = 20_260_101
EXAMPLES = 4

server = module_server(**FUZZ_CONFIG)


def test_no_operation_answers_a_server_error(server: RunningServer) -> None:
    world = open_world(server.url, server.config_path)
    fuzzer = Fuzzer(
        world,
        server.log_path,
        examples=EXAMPLES,
        seed=SEED,
        server_alive=lambda: server.process.poll() is None,
    )
    results = fuzzer.run()
    # every operation of the spec was sent something
    assert set(results.per_operation) == {op.key for op in fuzzer.operations}
    assert not results.failures, report(results, fuzzer.operations)
