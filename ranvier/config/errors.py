from __future__ import annotations

import errno
import getpass
import os


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


# errno -> (what went wrong, what to do about it), for paths the server must write
_WRITE_FAILURES: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "give the user Ranvier runs as ({user}) write access"),
    errno.EPERM: ("operation not permitted", "give the user Ranvier runs as ({user}) write access"),
    errno.EROFS: ("the file system is read-only", "remount it read-write"),
    errno.ENOSPC: ("the disk is full", "free some space on it"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or raise the quota"),
    errno.ENOTDIR: (
        "part of the path is a file, not a directory",
        "remove or rename that file",
    ),
    errno.ENOENT: ("a directory on the way does not exist", "create it"),
    errno.EISDIR: ("it is a directory", "name a file instead"),
}


def unwritable_path(what: str, path: str | os.PathLike[str], error: OSError, setting: str) -> str:
    """One line for the admin when the server cannot write `what` at `path`: the reason,
    the fix, and the setting that names the path (as the loaded config spells it)."""
    reason, fix = _WRITE_FAILURES.get(
        error.errno or 0, (error.strerror or str(error), "check the path and its permissions")
    )
    fix = fix.format(user=_user_name())
    return (
        f"Cannot write {what} at {os.fspath(path)}: {reason}. "
        f"To fix: {fix}, or set {setting} to a place it can write."
    )


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
