"""The `ranvier` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ranvier import __version__
from ranvier.config import ConfigError, load_config
from ranvier.config.generate import generate_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from ranvier.storage.errors import StorageError

    try:
        code: int = args.func(args)
    except (ConfigError, StorageError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ranvier", description="Ranvier Matrix homeserver")
    parser.add_argument("--version", action="version", version=f"ranvier {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = commands.add_parser("generate-config", help="write a new homeserver.yaml and key")
    gen.add_argument("--server-name", required=True, help="the server's public name")
    gen.add_argument("--config-path", "-c", required=True, help="where to write the config")
    gen.add_argument(
        "--data-dir", help="where the database, media and pid file go (default: next to the config)"
    )
    gen.set_defaults(func=_generate_config)

    run = commands.add_parser("run", help="run the homeserver in the foreground")
    _config_arg(run)
    run.set_defaults(func=_run)

    for name, func, help_text in (
        ("start", _start, "start the homeserver in the background"),
        ("stop", _stop, "stop the background homeserver"),
        ("restart", _restart, "stop, then start the background homeserver"),
        ("status", _status, "say whether the background homeserver is running"),
    ):
        sub = commands.add_parser(name, help=help_text)
        _config_arg(sub)
        sub.add_argument(
            "--log-file",
            help="where a started server writes its output "
            "(default: homeserver.log beside the pid file)",
        )
        sub.set_defaults(func=func)

    register_user = commands.add_parser(
        "register-user", help="create a user (works whether or not the server is running)"
    )
    _config_arg(register_user)
    register_user.add_argument("--user", "-u", required=True, help="localpart or full user ID")
    register_user.add_argument("--password", "-p", help="the password (asked for if left out)")
    register_user.add_argument("--admin", action="store_true", help="make the user a server admin")
    register_user.set_defaults(func=_register_user)

    db = commands.add_parser("db", help="database schema: status, upgrade, downgrade")
    db_commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    status = db_commands.add_parser("status", help="schema revision and pending work")
    _config_arg(status)
    status.set_defaults(func=_db_status)
    upgrade = db_commands.add_parser("upgrade", help="apply pending migrations")
    _config_arg(upgrade)
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=_db_upgrade)
    downgrade = db_commands.add_parser("downgrade", help="roll the schema back to REVISION")
    _config_arg(downgrade)
    downgrade.add_argument("revision")
    downgrade.set_defaults(func=_db_downgrade)
    _media_commands(commands)
    return parser


def _media_commands(commands: Any) -> None:
    media = commands.add_parser("media", help="media admin: quarantine, unquarantine, delete")
    media_commands = media.add_subparsers(dest="media_command", metavar="MEDIA_COMMAND")
    media_commands.required = True
    quarantine = media_commands.add_parser(
        "quarantine", help="stop serving media: one (ID or mxc:// URI), a room's or a user's"
    )
    _config_arg(quarantine)
    which = quarantine.add_mutually_exclusive_group(required=True)
    which.add_argument("--media-id", help="a media ID or mxc:// URI")
    which.add_argument("--room", help="every local media a room's events use")
    which.add_argument("--user", help="every media a user uploaded")
    quarantine.add_argument("--by", help="recorded as quarantined_by (default: command line)")
    quarantine.set_defaults(func=_media_quarantine)
    unquarantine = media_commands.add_parser("unquarantine", help="serve quarantined media again")
    _config_arg(unquarantine)
    unquarantine.add_argument("--media-id", required=True, help="a media ID or mxc:// URI")
    unquarantine.set_defaults(func=_media_unquarantine)
    delete = media_commands.add_parser(
        "delete", help="delete media: one, a user's, or all unused since a time"
    )
    _config_arg(delete)
    which = delete.add_mutually_exclusive_group(required=True)
    which.add_argument("--media-id", help="a media ID or mxc:// URI")
    which.add_argument(
        "--before-ts", type=int, help="media last used before this time (ms since the epoch)"
    )
    which.add_argument("--user", help="every media a user uploaded")
    delete.add_argument(
        "--size-gt", type=int, default=0, help="with --before-ts: only media bigger (bytes)"
    )
    delete.add_argument(
        "--include-profiles",
        action="store_true",
        help="with --before-ts: delete user and room avatars too",
    )
    delete.set_defaults(func=_media_delete)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config-path",
        default="homeserver.yaml",
        help="the homeserver.yaml to use (default: ./homeserver.yaml)",
    )


def _generate_config(args: argparse.Namespace) -> int:
    try:
        written = generate_config(args.server_name, args.config_path, args.data_dir)
    except FileExistsError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ranvier import process

    return process.run_foreground(load_config(args.config_path))


def _start(args: argparse.Namespace) -> int:
    from ranvier import process

    return process.start(Path(args.config_path), load_config(args.config_path), args.log_file)


def _stop(args: argparse.Namespace) -> int:
    from ranvier import process

    return process.stop(load_config(args.config_path))


def _restart(args: argparse.Namespace) -> int:
    from ranvier import process

    config = load_config(args.config_path)
    process.stop(config)
    return process.start(Path(args.config_path), config, args.log_file)


def _status(args: argparse.Namespace) -> int:
    from ranvier import process

    return process.status(load_config(args.config_path))


def _register_user(args: argparse.Namespace) -> int:
    import asyncio
    import getpass

    from ranvier.errors import MatrixError
    from ranvier.server import register_user

    config = load_config(args.config_path)
    password = args.password
    if password is None:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Confirm password: "):
            print("The passwords do not match", file=sys.stderr)
            return 1
    if not password:
        print("The password must not be empty", file=sys.stderr)
        return 1
    try:
        user_id = asyncio.run(register_user(config, args.user, password, admin=args.admin))
    except MatrixError as exc:
        if exc.errcode == "M_USER_IN_USE":
            print(f"The user {args.user} already exists", file=sys.stderr)
        else:
            print(f"Cannot register {args.user}: {exc.error}", file=sys.stderr)
        return 1
    print(user_id)
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from ranvier.storage import commands

    print(commands.db_status(load_config(args.config_path), print))
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from ranvier.storage import commands

    print(commands.db_upgrade(load_config(args.config_path), args.revision, print))
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from ranvier.storage import commands

    print(commands.db_downgrade(load_config(args.config_path), args.revision, print))
    return 0


def _media_command(run: Any) -> int:
    from ranvier.errors import MatrixError

    try:
        print(run())
    except MatrixError as exc:
        print(exc.error, file=sys.stderr)
        return 1
    return 0


def _media_quarantine(args: argparse.Namespace) -> int:
    from ranvier.services.media import commands

    config = load_config(args.config_path)
    return _media_command(
        lambda: commands.quarantine(
            config,
            print,
            media_id=args.media_id,
            room_id=args.room,
            user_id=args.user,
            by=args.by or commands.COMMAND_LINE,
        )
    )


def _media_unquarantine(args: argparse.Namespace) -> int:
    from ranvier.services.media import commands

    config = load_config(args.config_path)
    return _media_command(lambda: commands.unquarantine(config, args.media_id))


def _media_delete(args: argparse.Namespace) -> int:
    from ranvier.services.media import commands

    config = load_config(args.config_path)
    return _media_command(
        lambda: commands.delete(
            config,
            print,
            media_id=args.media_id,
            before_ts=args.before_ts,
            size_gt=args.size_gt,
            keep_profiles=not args.include_profiles,
            user_id=args.user,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
