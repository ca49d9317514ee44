"""The docs repository: a real git remote (a local bare repository) and the GitHub REST stand-in's pulls."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.cli import main
from bot.core.config import Settings, load_settings
from bot.core.models import Incident
from bot.devtools.sandbox.github import GitHubStandIn
from bot.loop.docs_sync import BRANCH, DocsSyncError, DocsSyncResult, Git, sync_docs
from bot.runtime.scheduler import JobRunner, build_jobs
from bot.slack import notices
from tests.factories import add_incident, postmortem_of

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
IDENTITY = ["-c", "user.name=Someone", "-c", "user.email=someone@example.com"]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """The docs repository: a bare repository whose main holds an MkDocs site."""
    bare = tmp_path / "devops-docs.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    git(seed, "switch", "--quiet", "-c", "main")
    (seed / "mkdocs.yml").write_text("site_name: DevOps docs\nplugins:\n  - techdocs-core\n")
    (seed / "docs").mkdir()
    (seed / "docs" / "index.md").write_text("# DevOps docs\n")
    git(seed, "add", ".")
    git(seed, "commit", "--quiet", "-m", "docs site")
    git(seed, "push", "--quiet", "origin", "main")
    return bare


@pytest.fixture
def github(remote: Path) -> Iterator[GitHubStandIn]:
    stand_in = GitHubStandIn(repository="acme/devops-docs")
    stand_in.git_dir = remote
    with stand_in:
        yield stand_in


@pytest.fixture
def settings(remote: Path, github: GitHubStandIn, tmp_path: Path) -> Settings:
    return load_settings(
        docs_repo=str(remote),
        docs_github_repository="acme/devops-docs",
        docs_repo_dir="docs/postmortems/",
        docs_work_dir=str(tmp_path / "work"),
        github_token=github.token,
        github_api_url=github.url,
        timezone="Europe/Berlin",
    )


def published(session: Session, day: int, title: str, *, private: bool = False) -> None:
    incident = add_incident(
        session, at=datetime(2026, 11, day, 9, tzinfo=UTC), title=title, resolve=600, document=600
    )
    incident.number = 1000 + day
    incident.channel_is_private = private
    pm = postmortem_of(session, incident)
    pm.severity, pm.services = "SEV2", ["checkout"]
    session.commit()


def remote_files(remote: Path, ref: str = BRANCH) -> list[str]:
    listing = git(remote, "ls-tree", "-r", "--name-only", ref)
    return [name for name in listing.splitlines() if name.startswith("docs/postmortems/")]


def remote_head(remote: Path) -> str | None:
    done = subprocess.run(
        ["git", "--git-dir", str(remote), "rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def sync(session: Session, settings: Settings) -> DocsSyncResult:
    return sync_docs(session=session, settings=settings, now=NOW)


def test_two_postmortems_one_branch_one_pull_request_then_a_third_updates_it(
    session: Session, settings: Settings, remote: Path, github: GitHubStandIn
) -> None:
    published(session, 17, "Checkout is down")
    published(session, 18, "Search is slow")
    first = sync(session, settings)

    assert first.created and first.commit == remote_head(remote)
    assert remote_files(remote) == [
        "docs/postmortems/2026-11-17-inc-1017-checkout-is-down.md",
        "docs/postmortems/2026-11-18-inc-1018-search-is-slow.md",
        "docs/postmortems/README.md",
    ]
    # One commit on top of main, which keeps the site as it was.
    assert git(remote, "rev-list", "--count", f"main..{BRANCH}") == "1"
    assert "mkdocs.yml" in git(remote, "ls-tree", "--name-only", BRANCH)
    [pull] = github.pulls.values()
    assert (pull.head, pull.base, pull.state) == (BRANCH, "main", "open")
    assert "2026-11-17-inc-1017-checkout-is-down.md" in pull.body
    assert "2026-11-18-inc-1018-search-is-slow.md" in pull.body
    # Front matter for MkDocs / TechDocs: service, severity, dates.
    document = git(remote, "show", f"{BRANCH}:docs/postmortems/2026-11-17-inc-1017-checkout-is-down.md")
    assert document.startswith(
        '---\ntitle: "Checkout is down"\nincident: "#1017"\nservice: "checkout"\nservices: ["checkout"]\n'
        'severity: "SEV2"\ntriggered: "2026-11-17"\npublished: "2026-11-17"\n'
        'tags: ["postmortem", "SEV2", "checkout"]\n---\n\n# Post-mortem: Checkout is down\n'
    )

    published(session, 19, "Payments time out")
    third = sync(session, settings)

    assert not third.created and third.commit == remote_head(remote)
    assert len(github.pulls) == 1 and pull.edits == 1 and pull.state == "open"
    assert "2026-11-19-inc-1019-payments-time-out.md" in pull.body
    assert len(remote_files(remote)) == 4
    assert git(remote, "rev-list", "--count", f"main..{BRANCH}") == "2"


def test_nothing_new_makes_no_commit_and_no_request(
    session: Session, settings: Settings, remote: Path, github: GitHubStandIn
) -> None:
    published(session, 17, "Checkout is down")
    sync(session, settings)
    head, calls = remote_head(remote), list(github.calls)

    again = sync(session, settings)

    assert again == DocsSyncResult(commit=None, pull_request=None)
    assert remote_head(remote) == head and github.calls == calls


def test_a_push_refused_by_a_concurrent_change_is_rebased_and_pushed(
    session: Session, settings: Settings, remote: Path, github: GitHubStandIn, tmp_path: Path
) -> None:
    published(session, 17, "Checkout is down")
    sync(session, settings)
    # Someone adds a note to the pull request's branch while the bot pushes (between its fetch and its push).
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", "--branch", BRANCH, str(remote), str(other))
    (other / "docs" / "postmortems" / "notes.md").write_text("# Notes\n")
    git(other, "add", ".")
    git(other, "commit", "--quiet", "-m", "a note")
    git(other, "push", "--quiet", "origin", "HEAD:refs/scratch/note")
    theirs = git(other, "rev-parse", "HEAD")
    hook = Path(settings.docs_work_dir) / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e "{tmp_path}/raced" ]; then\n'
        f'  touch "{tmp_path}/raced"\n'
        f'  git --git-dir="{remote}" update-ref refs/heads/{BRANCH} {theirs}\n'
        "fi\n"
    )
    hook.chmod(0o755)
    published(session, 18, "Search is slow")

    result = sync(session, settings)

    assert result.push_attempts == 2 and result.commit == remote_head(remote)
    assert git(remote, "rev-parse", f"{BRANCH}~1") == theirs  # ours, rebased onto theirs
    assert "docs/postmortems/notes.md" in remote_files(remote)
    assert "docs/postmortems/2026-11-18-inc-1018-search-is-slow.md" in remote_files(remote)
    assert len(github.pulls) == 1


def test_a_private_incident_never_reaches_the_repository(
    session: Session, settings: Settings, remote: Path, github: GitHubStandIn
) -> None:
    published(session, 17, "Checkout is down")
    published(session, 18, "Payroll leak", private=True)

    sync(session, settings)

    assert remote_files(remote) == [
        "docs/postmortems/2026-11-17-inc-1017-checkout-is-down.md",
        "docs/postmortems/README.md",
    ]
    history = git(remote, "log", "-p", "--all")
    assert "Payroll leak" not in history and "payroll" not in history
    [pull] = github.pulls.values()
    assert "payroll" not in pull.body


def test_the_scheduled_job_runs_once_across_replicas(
    engine: Engine, settings: Settings, remote: Path, github: GitHubStandIn
) -> None:
    with Session(engine) as session:
        published(session, 17, "Checkout is down")
    jobs = build_jobs(settings)
    assert "docs_sync" in [job.id for job in jobs]
    assert "docs_sync" not in [job.id for job in build_jobs(load_settings())]
    at = datetime(2026, 11, 24, 1, 5, tzinfo=UTC)  # 02:05 in Berlin: the 02:00 run is due
    one = JobRunner(engine=engine, settings=settings, jobs=jobs, holder="one")
    two = JobRunner(engine=engine, settings=settings, jobs=jobs, holder="two")

    assert one.run_due("docs_sync", at) == at - timedelta(minutes=5)
    assert two.run_due("docs_sync", at) is None

    assert len(github.pulls) == 1 and remote_head(remote) is not None


def test_docs_sync_command(
    database_url: str,
    settings: Settings,
    remote: Path,
    github: GitHubStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: Engine,
) -> None:
    with Session(engine) as session:
        published(session, 17, "Checkout is down")
    for name in ("docs_repo", "docs_github_repository", "docs_repo_dir", "docs_work_dir", "github_token"):
        monkeypatch.setenv(name.upper(), str(getattr(settings, name)))
    monkeypatch.setenv("GITHUB_API_URL", settings.github_api_url)
    monkeypatch.setenv("DATABASE_URL", database_url)

    assert main(["docs", "sync"]) == 0
    assert "opened pull request https://github.com/acme/devops-docs/pull/1" in capsys.readouterr().out
    assert main(["docs", "sync"]) == 0
    assert "nothing new" in capsys.readouterr().out

    monkeypatch.delenv("DOCS_REPO")
    assert main(["docs", "sync"]) == 1
    assert "DOCS_REPO" in capsys.readouterr().err


def test_the_token_reaches_git_only_through_its_environment(tmp_path: Path) -> None:
    token = "ghp_secret_token_123"
    settings = load_settings(
        docs_repo="https://127.0.0.1:1/acme/devops-docs.git",
        docs_github_repository="acme/devops-docs",
        docs_work_dir=str(tmp_path / "work"),
        github_token=token,
    )
    with pytest.raises(DocsSyncError) as refused:
        sync_docs(session=None, settings=settings, now=NOW)  # type: ignore[arg-type]  # fails before the database
    assert "git clone failed" in str(refused.value)
    assert token not in str(refused.value) and "x-access-token" not in str(refused.value)
    assert Git(tmp_path, settings).env["GIT_CONFIG_KEY_0"] == "http.extraheader"


def test_the_summary_links_to_the_document_s_place_once_merged(
    session: Session, settings: Settings, remote: Path, github: GitHubStandIn
) -> None:
    published(session, 17, "Checkout is down")
    [incident] = session.exec(select(Incident)).all()
    pm = postmortem_of(session, incident)

    def footer(with_settings: Settings) -> str:
        _text, blocks = notices.summary_message(
            session=session, incident=incident, postmortem=pm, settings=with_settings
        )
        return str(blocks[-1])

    assert "docs repository" not in footer(load_settings())
    github_settings = load_settings(docs_repo="git@github.com:acme/devops-docs.git")
    assert (
        "<https://github.com/acme/devops-docs/blob/HEAD/postmortems/2026-11-17-inc-1017-checkout-is-down.md"
        "|In the docs repository> once merged" in footer(github_settings)
    )
    # The link's path is where the sync puts the document: merged, it is on the default branch.
    sync(session, settings)
    git(remote, "update-ref", "refs/heads/main", BRANCH)
    link = footer(settings).split("/blob/HEAD/", 1)[1].split("|", 1)[0]
    assert link in git(remote, "ls-tree", "-r", "--name-only", "main").splitlines()
