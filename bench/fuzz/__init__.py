"""A fuzzer of every Client-Server API operation, run against a real Ranvier over HTTP.

`spec.py` bundles the spec's OpenAPI definitions (copied into `spec/`), schemathesis draws
cases from them, `inputs.py` makes each case into a request with real or hostile values,
`world.py` sets up the users, rooms and the rest those values come from, and `runner.py`
sends the requests one by one and records every 5xx with the server's traceback.
Run it by hand with `make fuzz` (see docs/testing.md); tests/fuzz runs a short, seeded
version on both engines in `make test`.
"""
