"""`postmortem-bot export --out DIR [--git]`: the published post-mortems as Markdown files, for a repository.

One file per published post-mortem (`<triggered date>-<incident ref>-<slug of title>.md`, rendered by
`render_document`, so it shows the action items as they are now) and an index `README.md` with the KPI
table of every incident so far. When a title changes, the file written under the old name is removed.
A post-mortem of a private-channel incident is exported only when it was shared publicly (the rule of
`incidents.shown_publicly`, as everywhere else); the index says how many were withheld.
Nothing in them depends on the moment of the export except what truly changed (an action item done or
overdue), so exporting again without changes commits nothing. With `--git` the files are committed on a
new branch `postmortems/<date>` of the git repository DIR is in, ready for a pull request.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.core.models import Incident, Postmortem, PostmortemStatus
from bot.core.rendering import format_instant, render
from bot.domain.document import PeopleLookup, document_filename, nobody_known, render_document
from bot.domain.document import file_ref as _ref
from bot.domain.document import legacy_file_ref as _legacy_ref
from bot.domain.incidents import display_id, shown_publicly
from bot.loop.kpis import compute_kpis, kpi_table

INDEX = "README.md"


class ExportError(Exception):
    """The export cannot go ahead (DIR is not a git repository, git refused); the message says why."""


@dataclass(frozen=True)
class ExportedPostmortem:
    filename: str
    ref: str
    title: str
    severity: str | None
    services: list[str]
    triggered: str
    published: str


@dataclass(frozen=True)
class ExportResult:
    files: list[Path]  # every file written, the index last
    # Files earlier exports wrote that must go: an incident renamed since, or no longer shared publicly.
    removed: list[Path] = field(default_factory=list)


# `<date>-<ref>[-<slug>].md`: the reference right after the date identifies the incident (a slug can
# contain "-inc-12-", but never right after the date).
_DOCUMENT_NAME = re.compile(
    r"\d{4}-\d{2}-\d{2}-(inc-\d+-pd-[a-z0-9]+|pd-[a-z0-9]+|inc-\d+|d-\d+)(-[a-z0-9-]*)?\.md"
)


def _documents_by_ref(out: Path) -> dict[str, list[Path]]:
    """The documents earlier exports wrote in `out`, by incident reference (one directory listing)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(out.iterdir()):
        match = _DOCUMENT_NAME.fullmatch(path.name)
        if match:
            found.setdefault(match.group(1), []).append(path)
    return found


def front_matter(entry: ExportedPostmortem) -> str:
    """YAML front matter for MkDocs / Backstage TechDocs (docs/docs-repository.md): every value a JSON
    string or list, which YAML reads as it is."""
    fields: dict[str, object] = {
        "title": entry.title,
        "incident": entry.ref,
        "service": entry.services[0] if entry.services else None,
        "services": entry.services,
        "severity": entry.severity,
        "triggered": entry.triggered,
        "published": entry.published,
        "tags": ["postmortem", *([entry.severity] if entry.severity else []), *entry.services],
    }
    lines = [f"{name}: {json.dumps(value, ensure_ascii=False)}" for name, value in fields.items()]
    return "---\n" + "\n".join(lines) + "\n---\n\n"


def export_postmortems(
    *,
    session: Session,
    out: Path,
    now: datetime,
    tz: ZoneInfo,
    response_target_minutes: int,
    people: PeopleLookup = nobody_known,
    with_front_matter: bool = False,
) -> ExportResult:
    """Write every published post-mortem and the index into `out` (created if missing). `people` names
    the people in the documents (without it, they are shown by Slack id); with `with_front_matter` each
    document starts with `front_matter` (the docs repository's layout)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = session.exec(
        select(Incident, Postmortem)
        .join(Postmortem, col(Postmortem.incident_id) == col(Incident.id))
        .where(Postmortem.status == PostmortemStatus.PUBLISHED)
        .order_by(col(Incident.triggered_at), col(Incident.id))
    ).all()
    files: list[Path] = []
    removed: list[Path] = []
    entries: list[ExportedPostmortem] = []
    withheld = 0
    earlier = _documents_by_ref(out)
    for incident, postmortem in rows:
        exported = shown_publicly(incident, postmortem)
        withheld += not exported
        filename = document_filename(incident, tz)
        # Earlier names of a renamed incident go; so does everything of one no longer shared publicly.
        legacy = _legacy_ref(incident)
        for stale in earlier.get(_ref(incident), []) + (earlier.pop(legacy, []) if legacy else []):
            if stale.name != filename or not exported:
                stale.unlink()
                removed.append(stale)
        if not exported:
            continue
        entry = ExportedPostmortem(
            filename=filename,
            ref=display_id(incident),
            title=incident.title,
            severity=postmortem.severity,
            services=list(postmortem.services),
            triggered=format_instant(incident.triggered_at, tz, "%Y-%m-%d"),
            published=format_instant(postmortem.published_at, tz, "%Y-%m-%d"),
        )
        document = render_document(
            session=session, incident=incident, postmortem=postmortem, tz=tz, people=people
        )
        path = out / filename
        path.write_text((front_matter(entry) if with_front_matter else "") + document)
        files.append(path)
        entries.append(entry)

    # The KPIs of every incident so far: from the first one's trigger until now.
    first = session.exec(select(func.min(Incident.triggered_at))).one() or now
    report = compute_kpis(
        session=session, since=first, until=now, response_target_minutes=response_target_minutes, tz=tz
    )
    index = out / INDEX
    index.write_text(
        render(
            "export_index.md.j2",
            count=len(entries),
            entries=entries,
            withheld=withheld,
            since=format_instant(first, tz, "%Y-%m-%d"),
            timezone=str(tz),
            kpi_table=kpi_table(report, markdown=True),
        )
    )
    files.append(index)
    return ExportResult(files=files, removed=removed)


def _git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60
    )
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip()
        raise ExportError(f"git {' '.join(args)} failed: {detail}")
    return completed.stdout.strip()


def git_toplevel(out: Path) -> Path:
    """The root of the git repository `out` is (or will be created) in; ExportError when there is none.
    Checked before anything is written."""
    existing = out.resolve()
    while not existing.is_dir():
        existing = existing.parent
    completed = subprocess.run(
        ["git", "-C", str(existing), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if completed.returncode != 0:
        raise ExportError(
            f"{out} is not in a git repository (git init it, or clone the repository the post-mortems "
            "go to, then export into it)"
        )
    return Path(completed.stdout.strip())


def commit_on_branch(
    *, out: Path, files: list[Path], now: datetime, tz: ZoneInfo, removed: Sequence[Path] = ()
) -> tuple[str, str] | None:
    """Create `postmortems/<date>` (`-2`, `-3`... when taken) from the current HEAD, switch to it and commit
    only `files` and the removal of `removed` (nothing else the person has staged). Returns (commit id,
    branch), or None when the files are as committed already (no branch is created then)."""
    repo = git_toplevel(out)

    def relative(path: Path) -> str:
        return str(path.resolve().relative_to(repo.resolve()))

    paths = [relative(path) for path in files]
    # A removed file that was never committed is nothing to git; one that was is a deletion to commit.
    paths += [relative(path) for path in removed if _git(repo, "ls-files", "--", relative(path))]
    if not _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths):
        return None
    day = format_instant(now, tz, "%Y-%m-%d")
    existing = set(_git(repo, "branch", "--list", "--format=%(refname:short)", f"postmortems/{day}*").split())
    branch, suffix = f"postmortems/{day}", 2
    while branch in existing:
        branch, suffix = f"postmortems/{day}-{suffix}", suffix + 1
    _git(repo, "switch", "--quiet", "-c", branch)
    _git(repo, "add", "--", *paths)
    count = len(files) - 1
    _git(
        repo,
        "commit",
        "--quiet",
        "-m",
        f"Post-mortems exported {day}: {count} document{'s' if count != 1 else ''} and the KPI index",
        "--only",
        "--",
        *paths,
    )
    return _git(repo, "rev-parse", "HEAD"), branch
