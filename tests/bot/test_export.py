"""`postmortem-bot export`: one Markdown file per published post-mortem, a KPI index, and `--git`."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.cli import main
from bot.core.db import make_engine, upgrade
from bot.core.models import Incident
from bot.domain.document import render_document
from bot.loop.export import document_filename, export_postmortems
from tests.factories import add_action_item, add_incident, postmortem_of
from tests.golden import assert_golden

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def published_data_set(session: Session) -> list[Incident]:
    """Two published post-mortems (one from PagerDuty, one declared) and a draft that is not exported."""
    first = add_incident(
        session,
        at=datetime(2026, 11, 16, 23, 30, tzinfo=UTC),  # Nov 17 in Berlin
        title="Café | checkout: 500s!",
        ack=120,
        response=300,
        resolve=1800,
        document=3600,
    )
    first.number = 1234
    pm = postmortem_of(session, first)
    pm.severity, pm.services, pm.root_cause = "SEV2", ["checkout", "pay|ments"], "Pool exhausted"
    add_action_item(session, first, text="Alert on pool saturation")
    second = add_incident(
        session,
        at=datetime(2026, 11, 18, 8, tzinfo=UTC),
        service="search",
        title="Search index stale",
        ack=60,
        response=600,
        resolve=900,
        document=7200,
    )
    add_incident(session, at=datetime(2026, 11, 19, 8, tzinfo=UTC), title="Still a draft", owner="U0ALICE")
    session.commit()
    return [first, second]


def test_one_file_per_published_postmortem_and_a_kpi_index(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    first, second = published_data_set(session)
    result = export_postmortems(
        session=session, out=tmp_path / "out", now=NOW, tz=BERLIN, response_target_minutes=15
    )
    names = [path.name for path in result.files]
    assert names == [
        "2026-11-17-inc-1234-cafe-checkout-500s.md",
        f"2026-11-18-d-{second.id}-search-index-stale.md",
        "README.md",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    document = result.files[0].read_text()
    assert document == render_document(
        session=session, incident=first, postmortem=postmortem_of(session, first), tz=BERLIN
    )
    assert "Pool exhausted" in document and "Alert on pool saturation" in document
    index = (
        result.files[-1].read_text().replace(f"D-{second.id}", "D-<id>").replace(f"d-{second.id}-", "d-<id>-")
    )
    assert_golden("export_index.md", index)


def test_file_names_stay_short_and_safe() -> None:
    incident = Incident(
        id=7, title="../../etc/passwd " + "x" * 200, triggered_at=NOW, created_at=NOW, updated_at=NOW
    )
    name = document_filename(incident, BERLIN)
    assert name.startswith("2026-11-23-d-7-etc-passwd-x") and name.endswith(".md")
    assert "/" not in name and len(name) <= 90


# --- The command and --git ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def sqlite_with_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'bot.core.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        published_data_set(session)
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TIMEZONE", "Europe/Berlin")
    return url


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "handbook"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.com")
    (repo / "README.md").write_text("# Handbook\n")
    (repo / "notes.txt").write_text("mine\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "--quiet", "-m", "start")
    return repo


def test_git_commits_only_the_export_on_a_new_branch(
    sqlite_with_data: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "add", "notes.txt")  # staged by the person: must not end up in the export's commit
    out = repo / "postmortems"
    assert main(["export", "--out", str(out), "--git"]) == 0
    branch = git(repo, "branch", "--show-current").strip()
    assert branch.startswith("postmortems/20")
    assert f"on branch {branch}" in capsys.readouterr().out
    committed = git(repo, "show", "--name-only", "--format=%s", "HEAD").split("\n")
    assert committed[0].startswith("Post-mortems exported") and "2 documents" in committed[0]
    assert sorted(filter(None, committed[1:])) == [
        "postmortems/2026-11-17-inc-1234-cafe-checkout-500s.md",
        "postmortems/2026-11-18-d-2-search-index-stale.md",
        "postmortems/README.md",
    ]
    assert git(repo, "log", "--format=%s", "main").strip() == "start"  # main is untouched
    assert "A  notes.txt" in git(repo, "status", "--porcelain")  # still staged, not committed

    # Nothing changed since: no second branch, no empty commit.
    assert main(["export", "--out", str(out), "--git"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert sorted(git(repo, "branch", "--format=%(refname:short)").split()) == ["main", branch]

    # From main (where the files are untracked) the same day: a second branch beside the first.
    git(repo, "switch", "--quiet", "main")
    assert main(["export", "--out", str(out), "--git"]) == 0
    assert sorted(git(repo, "branch", "--format=%(refname:short)").split()) == ["main", branch, f"{branch}-2"]


def test_git_refuses_a_directory_outside_any_repository(
    sqlite_with_data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "not-a-repo"
    out.mkdir()
    assert main(["export", "--out", str(out), "--git"]) == 1
    assert "is not in a git repository" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # refused before writing anything


def test_export_without_git_writes_the_files(sqlite_with_data: str, tmp_path: Path) -> None:
    assert main(["export", "--out", str(tmp_path / "docs")]) == 0
    assert len(list((tmp_path / "docs").glob("*.md"))) == 3


def test_a_renamed_incident_replaces_its_earlier_file_and_git_commits_the_rename(
    sqlite_with_data: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = repo / "postmortems"
    (repo / "postmortems").mkdir()
    # Another incident's file whose slug mentions inc-1234: not this incident's, never removed.
    bystander = out / "2026-11-01-inc-77-after-inc-1234-again.md"
    bystander.write_text("kept\n")
    assert main(["export", "--out", str(out), "--git"]) == 0
    engine = make_engine(sqlite_with_data)
    with Session(engine) as session:
        incident = session.exec(select(Incident).where(Incident.number == 1234)).one()
        incident.title = "Checkout pool exhausted"
        session.commit()
    engine.dispose()
    capsys.readouterr()

    assert main(["export", "--out", str(out), "--git"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "2026-11-17-inc-1234-checkout-pool-exhausted.md" in names
    assert "2026-11-17-inc-1234-cafe-checkout-500s.md" not in names and bystander.name in names
    changes = git(repo, "show", "--no-renames", "--name-status", "--format=", "HEAD").split("\n")
    assert "D\tpostmortems/2026-11-17-inc-1234-cafe-checkout-500s.md" in changes
    assert "A\tpostmortems/2026-11-17-inc-1234-checkout-pool-exhausted.md" in changes
    assert (
        git(repo, "status", "--porcelain", "--", "postmortems/2026-11-17-inc-1234-cafe-checkout-500s.md")
        == ""
    )


def test_a_private_incident_is_exported_only_while_shared_publicly(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    published_data_set(session)
    private = add_incident(
        session, at=datetime(2026, 11, 19, 9, tzinfo=UTC), title="Payroll leak", resolve=600, document=600
    )
    private.channel_is_private = True
    pm = postmortem_of(session, private)
    pm.root_cause = "A secret in a log"
    session.commit()
    out = tmp_path / "out"

    def export() -> tuple[list[str], str]:
        result = export_postmortems(session=session, out=out, now=NOW, tz=BERLIN, response_target_minutes=15)
        return sorted(p.name for p in out.iterdir()), result.files[-1].read_text()

    names, index = export()
    assert not any("payroll" in name for name in names) and "Payroll" not in index
    assert "1 post-mortem of incidents in private channels, not shared publicly, is not exported." in index

    pm.share_publicly = True
    session.commit()
    names, index = export()
    assert f"2026-11-19-d-{private.id}-payroll-leak.md" in names and "Payroll leak" in index
    assert "not shared publicly" not in index

    pm.share_publicly = False  # un-shared after an export: its file goes too
    session.commit()
    names, index = export()
    assert not any("payroll" in name for name in names) and "Payroll" not in index
