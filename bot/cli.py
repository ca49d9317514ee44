"""`postmortem-bot` (also `python -m bot`): serve, migrate, and run the demo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from bot.core.config import ConfigError, Settings, load_settings
from bot.core.errors import UserError

if TYPE_CHECKING:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlmodel import Session

T = TypeVar("T")


def _serve(_args: argparse.Namespace) -> int:
    from bot.runtime.server import BotServer

    BotServer(load_settings()).run()
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from bot.core.db import upgrade

    settings = load_settings()
    upgrade(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.devtools.demo import run_demo

    return run_demo(once=args.once, port=args.port)


def _local_day(text: str, tz: ZoneInfo) -> datetime:
    """A YYYY-MM-DD date at midnight in TIMEZONE, as aware UTC."""
    from datetime import UTC, date, datetime, time

    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a date: write YYYY-MM-DD") from None
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _with_session(settings: Settings, work: Callable[[Session], T]) -> T:
    """Run `work` in one unit of work on the configured database, then let the engine go. A database
    that is missing or not migrated is refused with what to do (nothing is created)."""
    from bot.core.db import make_engine, schema_problem, session_scope

    problem = schema_problem(settings.database_url)
    if problem is not None:
        raise ConfigError(
            f"{problem} (DATABASE_URL); run `postmortem-bot db upgrade` to create or migrate it"
        )
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            return work(session)
    finally:
        engine.dispose()


def _kpis(args: argparse.Namespace) -> int:
    import json

    from bot.loop.kpis import compute_kpis, kpi_table

    settings = load_settings()
    since, until = _local_day(args.since, settings.tz), _local_day(args.until, settings.tz)
    if until <= since:
        raise ConfigError("--until must be after --since")
    report = _with_session(
        settings,
        lambda session: compute_kpis(
            session=session,
            since=since,
            until=until,
            service=args.service,
            response_target_minutes=settings.response_target_minutes,
            tz=settings.tz,
        ),
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(f"Incidents triggered from {args.since} until {args.until} (exclusive), {settings.timezone}")
        print(kpi_table(report), end="")
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.core.clock import utcnow
    from bot.domain.document import nobody_known
    from bot.loop.export import ExportError, commit_on_branch, export_postmortems, git_toplevel
    from bot.slack.client import make_client
    from bot.slack.people import PeopleDirectory

    settings = load_settings()
    out, now = Path(args.out), utcnow()
    # People by name when the bot's token is at hand (users.info), else by their Slack id.
    people = PeopleDirectory(make_client(settings)).lookup if settings.slack_bot_token else nobody_known
    try:
        if args.git:
            git_toplevel(out)  # refuse before writing anything
        result = _with_session(
            settings,
            lambda session: export_postmortems(
                session=session,
                out=out,
                now=now,
                tz=settings.tz,
                response_target_minutes=settings.response_target_minutes,
                people=people,
            ),
        )
        print(f"wrote {len(result.files) - 1} post-mortem(s) and {result.files[-1]}")
        if args.git:
            committed = commit_on_branch(
                out=out, files=result.files, removed=result.removed, now=now, tz=settings.tz
            )
            if committed is None:
                print("nothing changed since the last export: no branch, no commit")
            else:
                commit, branch = committed
                print(f"committed {commit[:12]} on branch {branch}: push it and open a pull request")
    except ExportError as exc:
        print(f"postmortem-bot: {exc}", file=sys.stderr)
        return 1
    return 0


def _docs_sync(_args: argparse.Namespace) -> int:
    """`postmortem-bot docs sync`: the scheduled docs sync, now (docs/docs-repository.md)."""
    from bot.core.clock import utcnow
    from bot.core.config import ConfigError
    from bot.loop.docs_sync import DocsSyncError, people_of, sync_docs
    from bot.trackers.base import TrackerRefused, TrackerRetry

    settings = load_settings()
    try:
        result = _with_session(
            settings,
            lambda session: sync_docs(
                session=session, settings=settings, now=utcnow(), people=people_of(settings)
            ),
        )
    except (ConfigError, DocsSyncError, TrackerRefused, TrackerRetry) as exc:
        print(f"postmortem-bot: {exc}", file=sys.stderr)
        return 1
    if result.pull_request is None:
        print("nothing new since the last sync: no commit, no pull request")
    else:
        what = "opened" if result.created else "updated"
        pushed = f"pushed {result.commit[:12]}, " if result.commit else ""
        print(f"{pushed}{what} pull request {result.pull_request.get('html_url')}")
    return 0


def _runbooks(_args: argparse.Namespace) -> int:
    """`postmortem-bot runbooks`: the runbook health check's report, now (docs/runbooks.md)."""
    from bot.core.clock import utcnow
    from bot.loop.docs_sync import DocsSyncError
    from bot.loop.runbooks import check_runbooks, report_lines

    settings = load_settings()
    try:
        report = _with_session(
            settings, lambda session: check_runbooks(session=session, settings=settings, now=utcnow())
        )
    except (ConfigError, DocsSyncError) as exc:
        print(f"postmortem-bot: {exc}", file=sys.stderr)
        return 1
    print("\n".join(line.replace("*", "") for line in report_lines(report, settings)))
    return 0


def _outbox(args: argparse.Namespace) -> int:
    """Parked outbox rows: list them, replay them (`retry`) or give them up (`drop`)."""
    from bot.core.clock import utcnow
    from bot.slack.outbox import drop, parked, replay

    settings = load_settings()
    if args.outbox_command == "list":
        rows = _with_session(settings, parked)
        for row in rows:
            print(f"{row.id}\t{row.created_at:%Y-%m-%d %H:%M}\t{row.kind}\t{row.channel}\t{row.key}")
            print(f"\t{row.attempts} attempt(s): {row.last_error}")
        print(f"{len(rows)} parked row(s)" + ("; `outbox retry ID` replays one" if rows else ""))
        return 0
    if not args.ids and not args.all:
        raise ConfigError(f"outbox {args.outbox_command}: give the row ids (from `outbox list`) or --all")
    ids = None if args.all else args.ids
    if args.outbox_command == "retry":
        changed = _with_session(settings, lambda session: replay(session, ids, utcnow()))
        print(f"{changed} row(s) pending again: a running bot delivers them now")
    else:
        changed = _with_session(settings, lambda session: drop(session, ids))
        print(f"{changed} row(s) dropped")
    if ids is not None and changed < len(set(ids)):
        print("some ids are not parked rows (see `outbox list`)", file=sys.stderr)
        return 1
    return 0


def _purge(args: argparse.Namespace) -> int:
    from bot.core.clock import utcnow
    from bot.domain.retention import purge_slack_events

    if args.days < 1:
        print(
            "postmortem-bot: --days must be 1 or more (Slack retries an event within the hour)",
            file=sys.stderr,
        )
        return 2
    before = utcnow() - timedelta(days=args.days)
    removed = _with_session(load_settings(), lambda session: purge_slack_events(session, before=before))
    print(f"Removed {removed} record(s) of Slack events received before {before:%Y-%m-%d %H:%M} UTC.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postmortem-bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve Slack (HTTP or Socket Mode) and the HTTP routes")
    serve.set_defaults(func=_serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply migrations (start-up does this too)")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(func=_db_upgrade)

    kpis = commands.add_parser("kpis", help="KPIs of the incidents triggered in a period")
    kpis.add_argument("--since", required=True, help="first day, YYYY-MM-DD (in TIMEZONE)")
    kpis.add_argument("--until", required=True, help="day after the last, YYYY-MM-DD (exclusive)")
    kpis.add_argument("--service", help="only this service: its PagerDuty id, or its name (docs/metrics.md)")
    kpis.add_argument("--json", action="store_true", help="print JSON instead of a table")
    kpis.set_defaults(func=_kpis)

    export = commands.add_parser("export", help="published post-mortems as Markdown, with a KPI index")
    export.add_argument("--out", required=True, help="directory to write into (created if missing)")
    export.add_argument(
        "--git", action="store_true", help="commit the files on a new branch postmortems/<date> of DIR's repo"
    )
    export.set_defaults(func=_export)

    docs = commands.add_parser("docs", help="the docs repository (docs/docs-repository.md)")
    docs_commands = docs.add_subparsers(dest="docs_command", required=True)
    docs_commands.add_parser(
        "sync", help="push the published post-mortems and open or update the pull request, now"
    ).set_defaults(func=_docs_sync)

    commands.add_parser(
        "runbooks", help="the runbook health check: stale runbooks, services without one (docs/runbooks.md)"
    ).set_defaults(func=_runbooks)

    outbox = commands.add_parser("outbox", help="parked Slack messages: list, replay or drop them")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    outbox_commands.add_parser("list", help="the parked rows, with their errors").set_defaults(func=_outbox)
    for name, what in (("retry", "deliver again (pending, due now)"), ("drop", "give up for good")):
        command = outbox_commands.add_parser(name, help=f"parked rows: {what}")
        command.add_argument("ids", nargs="*", type=int, help="row ids from `outbox list`")
        command.add_argument("--all", action="store_true", help="every parked row")
        command.set_defaults(func=_outbox)
    purge = commands.add_parser("purge", help="remove the records of Slack events (docs/retention.md)")
    purge.add_argument(
        "--days", type=int, default=1, help="keep those received in the last DAYS days (default 1)"
    )
    purge.set_defaults(func=_purge)

    demo = commands.add_parser("demo", help="the whole loop against the local Slack sandbox, on SQLite")
    demo.add_argument("--once", action="store_true", help="play the script, print the transcript and exit")
    demo.add_argument("--port", type=int, default=3000, help="port of the demo's web page (default 3000)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings_level = load_settings().log_level
    except ConfigError as exc:
        print(f"postmortem-bot: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every plugin and step at INFO; the CLI says what matters itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        command: Callable[[argparse.Namespace], int] = args.func  # set_defaults(func=...) per command
        return command(args)
    except (ConfigError, UserError) as exc:
        print(f"postmortem-bot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
