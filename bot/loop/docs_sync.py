"""The docs repository: the published post-mortems as one pull request (docs/docs-repository.md).

`sync_docs` keeps a clone of DOCS_REPO in DOCS_WORK_DIR (cloned once, fetched on every run), writes the
documents and the index with `export_postmortems` (front matter on, privacy as everywhere: a withheld
post-mortem is never written) into DOCS_REPO_DIR on the branch `BRANCH` (continued from the remote's when it
exists, else started from the default branch), commits, pushes and opens the one pull request, or updates
the one already open for that branch. Nothing changed: no commit, no push, no GitHub call. A push refused
because someone pushed to the branch meanwhile: fetch, rebase onto theirs, push again (a few times).

Credentials: git's own (a credential helper, an SSH key, a token in the URL); with an https DOCS_REPO and
GITHUB_TOKEN set, the token goes to git as an http.extraheader through GIT_CONFIG_* variables of the git
process only (never on a command line, so never in an error message or a log).
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from bot.core.config import Settings
from bot.core.rendering import format_instant
from bot.domain.document import PeopleLookup, nobody_known
from bot.loop.export import export_postmortems
from bot.slack.client import make_client
from bot.slack.people import PeopleDirectory
from bot.trackers.base import TrackerRefused
from bot.trackers.github import GitHubClient

log = logging.getLogger(__name__)

BRANCH = "postmortem-bot/postmortems"
PUSH_ATTEMPTS = 3
# Kept in the clone's git config: the branch head a pull request was last opened or updated for.
SYNCED_KEY = "postmortem-bot.synced"
# One run at a time in the clone (the docs sync and the runbook check share it; APScheduler has 2 threads).
WORKDIR_LOCK = threading.Lock()
AUTHOR = ("postmortem-bot", "postmortem-bot@users.noreply.github.com")


class DocsSyncError(Exception):
    """git refused (clone, fetch, push after every retry); the message says which command and why."""


@dataclass(frozen=True)
class DocsSyncResult:
    commit: str | None  # the commit pushed by this run; None when nothing changed
    pull_request: dict[str, Any] | None  # GitHub's pull request, when one was opened or updated
    created: bool = False  # True when this run opened it
    push_attempts: int = 0


class Git:
    """git in one working directory, with the settings' credentials in the environment only."""

    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env.update(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": AUTHOR[0],
                "GIT_AUTHOR_EMAIL": AUTHOR[1],
                "GIT_COMMITTER_NAME": AUTHOR[0],
                "GIT_COMMITTER_EMAIL": AUTHOR[1],
            }
        )
        repo = settings.docs_repo or ""
        if repo.startswith("https://") and settings.github_token:
            basic = base64.b64encode(f"x-access-token:{settings.github_token}".encode()).decode()
            self.env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "http.extraheader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )

    def run(
        self, *args: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd or self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and completed.returncode != 0:
            detail = (completed.stderr or completed.stdout).strip()
            raise DocsSyncError(f"git {args[0]} failed: {detail}")
        return completed

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def ref(self, name: str) -> str | None:
        found = self.run("rev-parse", "--verify", "--quiet", name + "^{commit}", check=False)
        return found.stdout.strip() if found.returncode == 0 else None


def clone_or_fetch(git: Git, settings: Settings) -> str:
    """The clone, fresh from the remote; returns the remote's default branch."""
    if not (git.workdir / ".git").is_dir():
        git.workdir.parent.mkdir(parents=True, exist_ok=True)
        git.run(
            "clone",
            "--quiet",
            "--no-checkout",
            settings.docs_repo or "",
            str(git.workdir),
            cwd=git.workdir.parent,
        )
    git.run("fetch", "--quiet", "--prune", "origin")
    git.run("remote", "set-head", "origin", "--auto", check=False)
    head = git.run(
        "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", check=False
    ).stdout.strip()
    if not head:
        raise DocsSyncError(f"{settings.docs_repo} has no default branch yet: push a first commit to it")
    return head.removeprefix("origin/")


def _write_and_commit(
    git: Git, settings: Settings, session: Session, now: datetime, start: str, people: PeopleLookup
) -> str | None:
    """Check out BRANCH at `start`, write the documents, commit them; the commit, or None when unchanged."""
    git.run("checkout", "--quiet", "--force", "-B", BRANCH, start)
    git.run("clean", "--quiet", "-fd")
    directory = settings.docs_repo_dir.rstrip("/")
    export_postmortems(
        session=session,
        out=git.workdir / directory,
        now=now,
        tz=settings.tz,
        response_target_minutes=settings.response_target_minutes,
        people=people,
        with_front_matter=True,
    )
    git.run("add", "--all", "--", directory)
    if git.run("diff", "--cached", "--quiet", check=False).returncode == 0:
        return None
    day = format_instant(now, settings.tz, "%Y-%m-%d")
    git.run("commit", "--quiet", "-m", f"Post-mortems as of {day}")
    return git.out("rev-parse", "HEAD")


def _push(git: Git, settings: Settings, session: Session, now: datetime, people: PeopleLookup) -> int:
    """Push BRANCH; when refused (someone pushed meanwhile), fetch, rebase onto theirs and push again.
    Returns the number of attempts."""
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        pushed = git.run("push", "--quiet", "--porcelain", "origin", f"HEAD:refs/heads/{BRANCH}", check=False)
        if pushed.returncode == 0:
            return attempt
        log.warning(
            "docs sync: push refused (attempt %d), rebasing: %s", attempt, pushed.stderr.strip()[:300]
        )
        git.run("fetch", "--quiet", "origin")
        theirs = f"origin/{BRANCH}"
        if git.run("rebase", "--quiet", theirs, check=False).returncode != 0:
            # Their change touched our lines: drop our commit and write the documents again on top of theirs.
            git.run("rebase", "--abort", check=False)
            if _write_and_commit(git, settings, session, now, theirs, people) is None:
                return attempt
    raise DocsSyncError(f"git push of {BRANCH} refused {PUSH_ATTEMPTS} times: {pushed.stderr.strip()[:300]}")


def _pull_request_body(git: Git, settings: Settings, base: str) -> str:
    directory = settings.docs_repo_dir.rstrip("/")
    changed = git.out("diff", "--name-status", f"origin/{base}...HEAD", "--", directory).splitlines()
    lines = [f"- `{line.split(maxsplit=1)[1]}` ({line.split()[0]})" for line in changed if line.strip()]
    return (
        "Published post-mortems, written by postmortem-bot (the same documents as in Slack; post-mortems of "
        "private incidents not shared publicly are left out). Merge to publish; the bot keeps this pull "
        "request up to date until then.\n\n" + "\n".join(lines)
    )


def _open_or_update(
    client: GitHubClient, git: Git, settings: Settings, base: str
) -> tuple[dict[str, Any], bool]:
    """The one open pull request of BRANCH, updated, or a new one; (pull request, created)."""
    owner = client.repository.split("/")[0]
    fields = {"title": "Post-mortems from postmortem-bot", "body": _pull_request_body(git, settings, base)}
    query = {"head": f"{owner}:{BRANCH}", "base": base, "state": "open"}
    for _ in range(2):
        found = client.call("GET", "/pulls", query=query) or []
        if found:
            number = found[0]["number"]
            return client.call("PATCH", f"/pulls/{number}", body=fields), False
        try:
            return client.call("POST", "/pulls", body={**fields, "head": BRANCH, "base": base}), True
        except TrackerRefused as exc:
            # Opened between our list and our create (another run): update that one instead.
            if "already exists" not in str(exc):
                raise
    raise DocsSyncError(f"GitHub says a pull request of {BRANCH} exists but does not list it")


def sync_docs(
    *,
    session: Session,
    settings: Settings,
    now: datetime,
    client: GitHubClient | None = None,
    people: PeopleLookup = nobody_known,
) -> DocsSyncResult:
    """One run of the docs sync (the scheduled job and `postmortem-bot docs sync`); `people` names the
    people in the documents, as `export_postmortems` does."""
    settings.require_docs()
    if client is None:
        client = GitHubClient(
            api_url=settings.github_api_url,
            token=settings.github_token or "",
            repository=settings.docs_pull_repository or "",
        )
    with WORKDIR_LOCK:
        return _sync(session=session, settings=settings, now=now, client=client, people=people)


def _sync(
    *, session: Session, settings: Settings, now: datetime, client: GitHubClient, people: PeopleLookup
) -> DocsSyncResult:
    git = Git(Path(settings.docs_work_dir).resolve(), settings)
    base = clone_or_fetch(git, settings)
    remote_branch = f"origin/{BRANCH}"
    start = remote_branch if git.ref(remote_branch) else f"origin/{base}"
    commit = _write_and_commit(git, settings, session, now, start, people)
    attempts = 0
    if commit is not None:
        attempts = _push(git, settings, session, now, people)
        commit = git.out("rev-parse", "HEAD")
    head = git.ref("HEAD")
    synced = git.run("config", "--get", SYNCED_KEY, check=False).stdout.strip()
    ahead = git.out("rev-list", "--count", f"origin/{base}..HEAD") != "0"
    if commit is None and (synced == head or not ahead):
        return DocsSyncResult(commit=None, pull_request=None)
    # New commits, or a branch pushed by a run that stopped before its pull request (this clone never
    # recorded one for this head): open or update the pull request.
    pull, created = _open_or_update(client, git, settings, base)
    git.run("config", SYNCED_KEY, head or "")
    log.info("docs sync: %s pull request %s", "opened" if created else "updated", pull.get("html_url"))
    return DocsSyncResult(commit=commit, pull_request=pull, created=created, push_attempts=attempts)


def docs_sync_job(
    *, session: Session, settings: Settings, now: datetime, scheduled_for: datetime
) -> DocsSyncResult:
    """The scheduled job (bot/runtime/scheduler.py, DOCS_SCHEDULE, under the lease): people by name when
    the bot's token is at hand, like `postmortem-bot export`."""
    return sync_docs(session=session, settings=settings, now=now, people=people_of(settings))


def people_of(settings: Settings) -> PeopleLookup:
    return PeopleDirectory(make_client(settings)).lookup if settings.slack_bot_token else nobody_known
