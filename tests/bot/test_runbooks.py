"""The runbook health check over a real git history (commits with set dates) and seeded incidents."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.cli import main
from bot.core.config import Settings, load_settings
from bot.core.models import OutboxMessage
from bot.core.schedules import QuarterlySchedule
from bot.loop.runbooks import check_runbooks, report_lines
from bot.runtime.scheduler import JobRunner, build_jobs
from tests.factories import add_action_item, add_incident

BERLIN = "Europe/Berlin"
# The first Monday of 2026's fourth quarter (1 October is a Thursday), 10:30 in Berlin.
NOW = datetime(2026, 10, 5, 8, 30, tzinfo=UTC)


def commit(clone: Path, when: str, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Someone",
        "GIT_AUTHOR_EMAIL": "someone@example.com",
        "GIT_COMMITTER_NAME": "Someone",
        "GIT_COMMITTER_EMAIL": "someone@example.com",
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
    }
    for args in (["add", "."], ["commit", "--quiet", "-m", message]):
        subprocess.run(["git", *args], cwd=clone, env=env, check=True, capture_output=True)


def history(tmp_path: Path) -> Path:
    """The docs repository, a bare repository whose runbooks changed on set dates."""
    bare = tmp_path / "devops-docs.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    clone = tmp_path / "history"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(clone)], check=True, capture_output=True)
    subprocess.run(["git", "switch", "--quiet", "-c", "main"], cwd=clone, check=True)
    runbook = "# Runbook\n"
    commit(
        clone,
        "2026-01-10T12:00:00+00:00",
        {"runbooks/checkout.md": runbook, "runbooks/payments.md": runbook, "runbooks/search.md": runbook},
        "runbooks",
    )
    commit(clone, "2026-06-01T12:00:00+00:00", {"runbooks/payments.md": runbook + "Failover.\n"}, "payments")
    # A later commit that touches other files leaves the runbooks' dates alone.
    commit(clone, "2026-09-15T12:00:00+00:00", {"README.md": "# Docs\n"}, "readme")
    subprocess.run(["git", "push", "--quiet", "origin", "main"], cwd=clone, check=True, capture_output=True)
    return bare


def runbook_settings(tmp_path: Path) -> dict[str, str]:
    return {
        "docs_repo": str(history(tmp_path)),
        "docs_github_repository": "acme/devops-docs",
        "docs_work_dir": str(tmp_path / "work"),
        "runbooks": "checkout=runbooks/checkout.md,payments=runbooks/payments.md,search=runbooks/search.md,"
        "billing=runbooks/billing.md",
        "timezone": BERLIN,
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(**runbook_settings(tmp_path))


def seed(session: Session) -> None:
    def incident(service: str, day: str, number: int) -> None:
        made = add_incident(session, at=datetime.fromisoformat(day + "T09:00:00+00:00"), service=service)
        made.number = number

    for number, day in ((1, "2026-02-01"), (2, "2026-05-01"), (3, "2026-09-01")):
        incident("checkout", day, number)  # 3 since its runbook's last change: stale
    incident("payments", "2026-05-15", 4)  # before the runbook's change: not counted
    payments = add_incident(session, at=datetime(2026, 7, 1, 9, tzinfo=UTC), service="payments", resolve=60)
    payments.number = 5
    add_action_item(session, payments, text="Update runbook: failover to the standby")  # open: stale
    add_action_item(session, payments, text="Alert on saturation")  # open, not about the runbook
    search = add_incident(session, at=datetime(2026, 8, 1, 9, tzinfo=UTC), service="search", resolve=60)
    search.number = 6
    add_action_item(session, search, text="Update the RUNBOOK", completed_at=datetime(2026, 8, 2, tzinfo=UTC))
    incident("ledger", "2026-09-10", 7)  # no runbook, within 90 days
    incident("ledger", "2026-09-20", 8)
    incident("legacy", "2026-03-01", 9)  # no runbook, but more than 90 days ago
    session.commit()


def test_the_report_lists_exactly_the_stale_runbooks_and_the_services_without_one(
    session: Session, settings: Settings
) -> None:
    seed(session)
    report = check_runbooks(session=session, settings=settings, now=NOW)

    by_service = {runbook.service: runbook for runbook in report.runbooks}
    figures = {
        service: (
            runbook.last_change.date().isoformat() if runbook.last_change else None,
            [incident.number for incident in runbook.incidents],
            runbook.open_items,
            runbook.stale,
        )
        for service, runbook in by_service.items()
    }
    assert figures == {
        "billing": (None, [], 0, True),  # not in the repository
        "checkout": ("2026-01-10", [1, 2, 3], 0, True),
        "payments": ("2026-06-01", [5], 1, True),
        "search": ("2026-01-10", [6], 0, False),
    }
    assert [runbook.service for runbook in report.stale] == ["billing", "checkout", "payments"]
    assert report.without_runbook == [("ledger", 2)]
    lines = report_lines(report, settings)
    assert lines[0] == "*Runbook check*: 4 runbooks, 3 stale, 1 services with incidents and no runbook"
    web = "https://github.com/acme/devops-docs/blob/HEAD/runbooks"
    assert lines[1:5] == [
        "*Stale runbooks*",
        f"• billing: <{web}/billing.md|runbooks/billing.md> is not in the repository",
        f"• checkout: <{web}/checkout.md|runbooks/checkout.md> last changed 2026-01-10, 3 incidents since "
        "(<#C0INC|#1>, <#C0INC|#2>, <#C0INC|#3>)",
        f"• payments: <{web}/payments.md|runbooks/payments.md> last changed 2026-06-01, 1 incidents since "
        "(<#C0INC|#5>), 1 runbook action items open",
    ]
    assert "• ledger: 2 incidents" in lines
    assert lines[-1] == "*Up to date*: search (1 incidents since 2026-01-10)"


def test_the_quarterly_schedule_is_the_first_monday_of_each_quarter() -> None:
    schedule = QuarterlySchedule.parse("quarterly mon 10:00")
    assert schedule is not None
    berlin = ZoneInfo(BERLIN)
    assert schedule.previous(NOW, berlin) == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    assert schedule.previous(datetime(2026, 10, 5, 7, 59, tzinfo=UTC), berlin) == datetime(
        2026, 7, 6, 8, 0, tzinfo=UTC
    )
    assert schedule.previous(datetime(2026, 1, 2, tzinfo=UTC), berlin) == datetime(
        2025, 10, 6, 8, 0, tzinfo=UTC
    )
    assert load_settings().runbook_check == schedule


def test_the_scheduled_check_posts_the_report_once(engine: Engine, settings: Settings) -> None:
    with Session(engine) as session:
        seed(session)
    jobs = build_jobs(settings)
    runner = JobRunner(engine=engine, settings=settings, jobs=jobs, holder="one")
    other = JobRunner(engine=engine, settings=settings, jobs=jobs, holder="two")

    assert runner.run_due("runbook_check", NOW) == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    assert other.run_due("runbook_check", NOW) is None

    with Session(engine) as session:
        [row] = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert row.channel == settings.postmortems_channel
    assert "4 runbooks, 3 stale, 1 services" in str(row.payload["blocks"])


def test_runbooks_command(
    database_url: str,
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Session(engine) as session:
        seed(session)
    for name in ("docs_repo", "docs_github_repository", "docs_work_dir", "timezone"):
        monkeypatch.setenv(name.upper(), str(getattr(settings, name)))
    monkeypatch.setenv("RUNBOOKS", ",".join(f"{s}={p}" for s, p in settings.runbooks.items()))
    monkeypatch.setenv("DATABASE_URL", database_url)

    assert main(["runbooks"]) == 0
    out = capsys.readouterr().out
    assert "Runbook check: 4 runbooks" in out and "ledger: 2 incidents" in out

    monkeypatch.delenv("RUNBOOKS")
    assert main(["runbooks"]) == 1
    assert "RUNBOOKS" in capsys.readouterr().err
