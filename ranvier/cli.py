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
    except KeyboardInterrupt:
        # Ctrl-C at a prompt: the admin changed their mind, nothing to report
        print(file=sys.stderr)
        return 130
    return code


def _command(
    commands: Any, name: str, help_text: str, description: str, *examples: str
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does and shows how it is used."""
    shown = "\n".join(f"  {example}" for example in examples)
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=f"example{'s' if len(examples) > 1 else ''}:\n{shown}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ranvier",
        description="Ranvier Matrix homeserver. `ranvier COMMAND --help` explains each command.",
        epilog="example:\n  ranvier generate-config --server-name example.org -c homeserver.yaml\n"
        "  ranvier start -c homeserver.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ranvier {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = _command(
        commands,
        "generate-config",
        "write a new homeserver.yaml and key",
        "Write a commented homeserver.yaml, a logging config and a new signing key for "
        "SERVER_NAME (the part after ':' in user IDs, which cannot change later). Existing "
        "files are never overwritten.",
        "ranvier generate-config --server-name example.org -c /etc/ranvier/homeserver.yaml "
        "--data-dir /var/lib/ranvier",
    )
    gen.add_argument(
        "--server-name",
        required=True,
        help="the server's public name: a hostname or IP address, optionally with :port",
    )
    gen.add_argument("--config-path", "-c", required=True, help="where to write the config")
    gen.add_argument(
        "--data-dir", help="where the database, media and pid file go (default: next to the config)"
    )
    gen.set_defaults(func=_generate_config)

    run = _command(
        commands,
        "run",
        "run the homeserver in the foreground",
        "Run the homeserver in the foreground (for systemd or a container) until SIGTERM or "
        "Ctrl-C. SIGHUP reopens log files. The database schema is upgraded at start.",
        "ranvier run -c homeserver.yaml",
    )
    _config_arg(run)
    # set by `start`: the file stdout and stderr go to, reopened on SIGHUP
    run.add_argument("--output-file", help=argparse.SUPPRESS)
    run.set_defaults(func=_run)

    for name, func, help_text, description in (
        (
            "start",
            _start,
            "start the homeserver in the background",
            "Start the homeserver in the background and wait until it listens; its output "
            "goes to --log-file. The pid file (pid_file) tracks it.",
        ),
        (
            "stop",
            _stop,
            "stop the background homeserver",
            "Stop the homeserver named by the pid file: SIGTERM, then wait (up to 30 s) for "
            "requests in flight to finish.",
        ),
        (
            "restart",
            _restart,
            "stop, then start the background homeserver",
            "Stop the background homeserver, then start it again (after an upgrade, or to "
            "apply a changed config).",
        ),
        (
            "status",
            _status,
            "say whether the background homeserver is running",
            "Say whether the homeserver named by the pid file runs. Exit code 0 if it does, "
            "3 if not (as init scripts expect).",
        ),
        (
            "reload",
            _reload,
            "make the background homeserver reopen its log files",
            "Send SIGHUP to the homeserver named by the pid file: it reopens its log files "
            "(use it in logrotate's postrotate) and keeps serving.",
        ),
    ):
        sub = _command(commands, name, help_text, description, f"ranvier {name} -c homeserver.yaml")
        _config_arg(sub)
        if name in ("start", "restart"):
            sub.add_argument(
                "--log-file",
                help="where a started server writes its output "
                "(default: homeserver.log beside the pid file)",
            )
        sub.set_defaults(func=func)

    register_user = _command(
        commands,
        "register-user",
        "create a user (works whether or not the server is running)",
        "Create a user straight in the database, whether or not the server is running. "
        "Without --password it asks for one on the terminal.",
        "ranvier register-user -c homeserver.yaml --user alice --admin",
        "ranvier register-user -c homeserver.yaml --user @bob:example.org --password 'S3cret!'",
    )
    _config_arg(register_user)
    register_user.add_argument("--user", "-u", required=True, help="localpart or full user ID")
    register_user.add_argument(
        "--password", "-p", help="the password (asked for on the terminal if left out)"
    )
    register_user.add_argument("--admin", action="store_true", help="make the user a server admin")
    register_user.set_defaults(func=_register_user)

    appservices = _command(
        commands,
        "appservices",
        "list the application services and how far behind each is",
        "List the application services (bridges, bots) app_service_config_files registers, "
        "with their namespaces, and from the database how many transactions each has not "
        "acknowledged (and how old the oldest is) and how far its events stream is behind "
        "the newest event. Read-only: the server may be running.",
        "ranvier appservices -c homeserver.yaml",
    )
    _config_arg(appservices)
    appservices.set_defaults(func=_appservices)

    _db_commands(commands)
    _media_commands(commands)
    _port_db_command(commands)
    _import_synapse_command(commands)
    _hash_password_command(commands)
    return parser


def _port_db_command(commands: Any) -> None:
    port = _command(
        commands,
        "port-db",
        "copy a Ranvier SQLite database into PostgreSQL",
        "Copy the Ranvier SQLite database into an empty PostgreSQL database, then verify "
        "the copy (row counts, first and last rows of every table) and say what to change "
        "in homeserver.yaml. Stop the server first. Stopped midway, the same command "
        "continues where it stopped. Progress goes to stderr.",
        "ranvier port-db --sqlite-database /var/lib/ranvier/homeserver.db "
        "--postgres-config homeserver-postgres.yaml",
    )
    port.add_argument(
        "--sqlite-database", required=True, help="the SQLite file (database.args.database)"
    )
    port.add_argument(
        "--postgres-config",
        required=True,
        help="a YAML file (homeserver.yaml will do) whose `database` section names the "
        "PostgreSQL database to fill",
    )
    port.add_argument(
        "--batch-size", type=int, default=1000, help="rows copied per transaction (default 1000)"
    )
    port.add_argument("-v", "--verbose", action="store_true", help="show every batch copied")
    # Synapse's full-screen progress; refused below rather than ignored
    port.add_argument("--curses", action="store_true", help=argparse.SUPPRESS)
    port.set_defaults(func=_port_db)


def _import_synapse_command(commands: Any) -> None:
    command = _command(
        commands,
        "import-synapse",
        "import a stopped Synapse's accounts into a new Ranvier database",
        "Read Synapse's database (read-only) and import its users, devices, access tokens, "
        "encryption keys, key backups, account data, push rules, pushers and filters into "
        "Ranvier's empty database, then verify the counts. Rooms, events and media are not "
        "imported yet. Stop Synapse and Ranvier first; Ranvier must have Synapse's "
        "server_name and signing key. Stopped midway, the same command continues where it "
        "stopped.",
        "ranvier import-synapse -c homeserver.yaml --synapse-config /etc/synapse/homeserver.yaml",
    )
    _config_arg(command)
    command.add_argument("--synapse-config", required=True, help="Synapse's homeserver.yaml")
    command.add_argument(
        "--batch-size", type=int, default=1000, help="rows written per transaction (default 1000)"
    )
    command.set_defaults(func=_import_synapse)


def _hash_password_command(commands: Any) -> None:
    hash_password = _command(
        commands,
        "hash-password",
        "print the hash of a password, for the users table or an admin API",
        "Print a password hash Ranvier accepts (argon2id at password_config.argon2's cost, "
        "with password_config.pepper, read from -c when given). Without -p it asks for the "
        "password twice on the terminal.",
        "ranvier hash-password -c homeserver.yaml",
        "ranvier hash-password -p 'S3cret!'",
    )
    hash_password.add_argument("-p", "--password", help="the password (asked for if left out)")
    hash_password.add_argument(
        "-c",
        "--config",
        help="a YAML file (homeserver.yaml will do) to read password_config from; without "
        "it, no pepper and the default cost",
    )
    hash_password.set_defaults(func=_hash_password)


def _db_commands(commands: Any) -> None:
    db = _command(
        commands,
        "db",
        "database schema: status, upgrade, downgrade",
        "Show or move the database schema. The server upgrades it itself at start; these "
        "are for watching a long migration, or rolling back before installing an older "
        "Ranvier.",
        "ranvier db status -c homeserver.yaml",
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    status = _command(
        db_commands,
        "status",
        "schema revision and pending work",
        "Show the database, its schema revision, the newest revision this Ranvier knows, "
        "pending migrations and pending background updates with their progress.",
        "ranvier db status -c homeserver.yaml",
    )
    _config_arg(status)
    status.set_defaults(func=_db_status)
    upgrade = _command(
        db_commands,
        "upgrade",
        "apply pending migrations",
        "Apply pending migrations up to REVISION (default: all of them), as the server "
        "would at start.",
        "ranvier db upgrade -c homeserver.yaml",
    )
    _config_arg(upgrade)
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=_db_upgrade)
    downgrade = _command(
        db_commands,
        "downgrade",
        "roll the schema back to REVISION",
        "Revert migrations until the schema is at REVISION ('base' drops every Ranvier "
        "table), dropping the tables and data they added. Refused while a server uses the "
        "database. Asks for confirmation on a terminal; elsewhere pass --yes. Back up the "
        "database first.",
        "ranvier stop -c homeserver.yaml && ranvier db downgrade -c homeserver.yaml 0014_room_keys",
    )
    _config_arg(downgrade)
    downgrade.add_argument("revision", help="the revision to go back to, or 'base'")
    downgrade.add_argument(
        "--yes", "-y", action="store_true", help="drop the data without asking for confirmation"
    )
    downgrade.set_defaults(func=_db_downgrade)


def _media_commands(commands: Any) -> None:
    media = _command(
        commands,
        "media",
        "media admin: quarantine, unquarantine, delete",
        "Quarantine, release or delete local media, as Synapse's media admin API does.",
        "ranvier media quarantine -c homeserver.yaml --room '!abc:example.org'",
    )
    media_commands = media.add_subparsers(dest="media_command", metavar="MEDIA_COMMAND")
    media_commands.required = True
    quarantine = _command(
        media_commands,
        "quarantine",
        "stop serving media: one (ID or mxc:// URI), a room's or a user's",
        "Stop serving media (its bytes are kept): one media ID or mxc:// URI, every local "
        "media a room's events use, or every media a user uploaded. Protected media is "
        "left alone.",
        "ranvier media quarantine -c homeserver.yaml --media-id mxc://example.org/abcDEF",
        "ranvier media quarantine -c homeserver.yaml --user @spammer:example.org",
    )
    _config_arg(quarantine)
    which = quarantine.add_mutually_exclusive_group(required=True)
    which.add_argument("--media-id", help="a media ID or mxc:// URI")
    which.add_argument("--room", help="every local media a room's events use")
    which.add_argument("--user", help="every media a user uploaded")
    quarantine.add_argument("--by", help="recorded as quarantined_by (default: command line)")
    quarantine.set_defaults(func=_media_quarantine)
    unquarantine = _command(
        media_commands,
        "unquarantine",
        "serve quarantined media again",
        "Serve one quarantined media again.",
        "ranvier media unquarantine -c homeserver.yaml --media-id mxc://example.org/abcDEF",
    )
    _config_arg(unquarantine)
    unquarantine.add_argument("--media-id", required=True, help="a media ID or mxc:// URI")
    unquarantine.set_defaults(func=_media_unquarantine)
    delete = _command(
        media_commands,
        "delete",
        "delete media: one, a user's, or all unused since a time",
        "Delete media and their thumbnails for good: one media, a user's uploads, or every "
        "media last used before a time.",
        "ranvier media delete -c homeserver.yaml --media-id mxc://example.org/abcDEF",
        "ranvier media delete -c homeserver.yaml --before-ts 1700000000000 --size-gt 1048576",
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
    from ranvier.protocol.server_names import server_name_problem

    problem = server_name_problem(args.server_name)
    if problem is not None:
        print(
            f"{args.server_name!r} is not a valid server name: {problem}. Use the host name "
            "users will see in their IDs, optionally with a port, e.g. example.org or "
            "matrix.example.org:8448. Nothing was written.",
            file=sys.stderr,
        )
        return 2
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

    output_file = Path(args.output_file) if args.output_file else None
    return process.run_foreground(load_config(args.config_path), output_file=output_file)


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


def _reload(args: argparse.Namespace) -> int:
    from ranvier import process

    return process.reload(load_config(args.config_path))


def _status(args: argparse.Namespace) -> int:
    from ranvier import process

    return process.status(load_config(args.config_path))


def _password(given: str | None, command: str, flag: str) -> str | int:
    """The password `given` on the command line, or asked for twice on the terminal; an
    exit status when there is none to be had."""
    import getpass

    password = given
    if password is None:
        if not sys.stdin.isatty():
            print(
                f"ranvier {command}: no terminal to ask for the password on; pass "
                f"{flag}, or run the command on a terminal",
                file=sys.stderr,
            )
            return 2
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Confirm password: "):
            print("The passwords do not match", file=sys.stderr)
            return 1
    if not password:
        print("The password must not be empty", file=sys.stderr)
        return 1
    return password


def _register_user(args: argparse.Namespace) -> int:
    import asyncio

    from ranvier.errors import MatrixError
    from ranvier.server import register_user

    config = load_config(args.config_path)
    password = _password(args.password, "register-user", "--password PASSWORD")
    if isinstance(password, int):
        return password
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


def _appservices(args: argparse.Namespace) -> int:
    from ranvier.services.appservice import commands

    print(commands.list_appservices(load_config(args.config_path)))
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from ranvier.storage import commands

    print(commands.db_status(load_config(args.config_path), print))
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from ranvier.storage import commands

    print(commands.db_upgrade(load_config(args.config_path), args.revision, print))
    return 0


class _NotConfirmed(Exception):
    """A downgrade that would drop data was not confirmed; the message says how to."""


def _db_downgrade(args: argparse.Namespace) -> int:
    from ranvier import process
    from ranvier.storage import commands

    config = load_config(args.config_path)
    # the pid file catches a server of this config before anything is opened; the database's
    # own hold (storage/server_hold.py) catches the rest, on other machines too
    pid = process.running_pid(config)
    if pid is not None:
        print(
            f"Ranvier is running (pid {pid}, from {process.pid_file_of(config)}); stop it "
            f"first: ranvier stop -c {args.config_path}. Nothing was changed.",
            file=sys.stderr,
        )
        return 1

    def confirm(losing: list[str]) -> bool:
        what = "every Ranvier table" if args.revision == "base" else "what these migrations added"
        lines = "\n".join(f"  {line}" for line in losing)
        warning = f"This drops {what}, with all the data in it:\n{lines}"
        if args.yes:
            return True
        if not sys.stdin.isatty():
            raise _NotConfirmed(
                f"{warning}\nThere is no terminal to confirm on: pass --yes to go ahead. "
                "Nothing was changed."
            )
        print(warning)
        try:
            answer = input("Back up the database first. Type 'yes' to go ahead: ")
        except EOFError:
            answer = ""
        return answer.strip().lower() == "yes"

    try:
        print(commands.db_downgrade(config, args.revision, print, confirm))
    except _NotConfirmed as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def _port_db(args: argparse.Namespace) -> int:
    from ranvier.port_db import port_db

    if args.curses:
        print(
            "ranvier port-db has no full-screen (curses) display: it shows progress as lines "
            "on stderr. Run it again without --curses.",
            file=sys.stderr,
        )
        return 2
    return port_db(
        args.sqlite_database,
        args.postgres_config,
        batch_size=args.batch_size,
        verbose=args.verbose,
    )


def _import_synapse(args: argparse.Namespace) -> int:
    from ranvier.import_synapse import import_synapse

    return import_synapse(args.config_path, args.synapse_config, batch_size=args.batch_size)


def _hash_password(args: argparse.Namespace) -> int:
    from ranvier.services.password_hash_command import hash_password

    password = _password(args.password, "hash-password", "-p PASSWORD")
    if isinstance(password, int):
        return password
    print(hash_password(password, Path(args.config) if args.config else None))
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
