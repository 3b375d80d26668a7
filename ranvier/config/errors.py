from __future__ import annotations


class ConfigError(Exception):
    """A configuration the server refuses to start with. The message names the key, the file
    and what to do instead, so an admin can fix it without reading code."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f"in {path}" if path else "in the configuration"
        lines = [f"Ranvier cannot start: {len(problems)} problem(s) {where}:"]
        lines += [f"  - {problem}" for problem in problems]
        super().__init__("\n".join(lines))
