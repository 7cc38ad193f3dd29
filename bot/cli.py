"""The `integ-bot` console script."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date
from pathlib import Path

from bot.settings import Settings, SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="integ-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the bot: HTTP server, scheduler, Socket Mode")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default $PORT or 3000")
    shell = sub.add_parser("shell", help="answer /integ lines typed at a local console")
    shell.add_argument("-c", dest="line", help="answer this one line and exit")
    shell.add_argument(
        "--as",
        dest="as_user",
        default=None,
        metavar="USER",
        help="the Slack user id whose Home tab `home` shows (default: the console's)",
    )
    shell.add_argument("words", nargs="*", help="a line to answer and exit, as with -c")
    catalog = sub.add_parser("catalog", help="catalog tools")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    check = catalog_sub.add_parser("check", help="validate a catalog file")
    check.add_argument("file", type=Path)
    db = sub.add_parser("db", help="database tools")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations")
    export = sub.add_parser(
        "export",
        help="write the change log, the audit trail, the reliability report or the knowledge "
        "base out",
    )
    export_sub = export.add_subparsers(dest="export_command", required=True)
    changes = export_sub.add_parser("changes", help="the change log as CSV, oldest first")
    changes.add_argument(
        "--since", type=_day, metavar="DATE", help="changes on or after this day (YYYY-MM-DD)"
    )
    changes.add_argument("--integration", metavar="I", help="one integration's changes")
    changes.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout"
    )
    audit = export_sub.add_parser("audit", help="the audit trail as CSV, oldest first")
    audit.add_argument(
        "--since", type=_day, metavar="DATE", help="entries on or after this day (YYYY-MM-DD)"
    )
    audit.add_argument("--integration", metavar="I", help="one integration's entries")
    audit.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout"
    )
    report = export_sub.add_parser(
        "report", help="the reliability report as CSV: a row per integration and per system"
    )
    report.add_argument(
        "--period",
        default="30d",
        metavar="P",
        help="30d, 90d (any number of days) or month (the last whole month); default 30d",
    )
    report.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout"
    )
    kb = export_sub.add_parser("kb", help="Markdown pages and the diagram, for a wiki")
    kb.add_argument("directory", type=Path)
    args = parser.parse_args(argv)

    # The output of the shell and the exports is what was asked for; only warnings belong
    # beside it.
    default_level = "WARNING" if args.command in ("shell", "export") else "INFO"
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", default_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Both log every migration step and every tick at INFO: noise in the bot's own log.
    for chatty in ("alembic", "apscheduler"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if args.command == "catalog":
        return check_catalog(args.file)
    # Imported late: `catalog check` must work without touching the database.
    from bot.runtime import StartupError

    try:
        settings = load_settings()
        if args.command == "db":
            return db_upgrade(settings)
        if args.command == "export":
            return run_export(settings, args)
        if args.command == "shell":
            from bot.shell import SHELL_USER, run_shell

            line = args.line if args.line is not None else (" ".join(args.words) or None)
            return run_shell(settings, line, args.as_user or SHELL_USER)
        from bot.server import serve as run_server

        return run_server(settings, args.host, args.port or settings.port)
    except (SettingsError, StartupError) as exc:
        print(f"integ-bot: {exc}", file=sys.stderr)
        return 2


def check_catalog(path: Path) -> int:
    from commands.catalog.spec import CatalogInvalid, load_catalog

    try:
        catalog = load_catalog(path)
    except CatalogInvalid as exc:
        for error in exc.errors:
            print(error)
        count = len(exc.errors)
        print(f"{path}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    print(f"{path}: ok, {len(catalog.systems)} systems, {len(catalog.integrations)} integrations")
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.export import ExportError, export_audit, export_changes, export_kb, export_report

    try:
        if args.export_command == "changes":
            count = export_changes(settings, args.output, args.since, args.integration)
            if args.output is not None:
                print(f"{count} change{'s' if count != 1 else ''} written to {args.output}")
            return 0
        if args.export_command == "audit":
            count = export_audit(settings, args.output, args.since, args.integration)
            if args.output is not None:
                entries = "audit entry" if count == 1 else "audit entries"
                print(f"{count} {entries} written to {args.output}")
            return 0
        if args.export_command == "report":
            count = export_report(settings, args.output, args.period)
            if args.output is not None:
                print(f"{count} rows written to {args.output}")
            return 0
        written = export_kb(settings, args.directory)
    except ExportError as exc:
        print(f"integ-bot export: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} files written to {args.directory}")
    return 0


def db_upgrade(settings: Settings) -> int:
    from bot.runtime import open_database

    engine = open_database(settings)
    print(f"database {engine.url.render_as_string(hide_password=True)} is up to date")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
