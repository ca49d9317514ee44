"""The runbook health check (docs/runbooks.md): each runbook's last change in the docs repository against
the incidents of its service since.

RUNBOOKS names each service's runbook (`SERVICE=path` in DOCS_REPO; SERVICE is the incident's PagerDuty
service name). A runbook is stale when it is missing from the default branch, when RUNBOOK_STALE_INCIDENTS
or more incidents of its service were triggered after its last commit, or when one of those incidents has
an action item about the runbook (its text says "runbook") still open. The report also lists the services
with incidents in the last NO_RUNBOOK_DAYS days and no runbook. Figures only; incidents by reference and
channel link (never a title: a private incident's title stays in its channel).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, func, select

from bot.core.config import ConfigError, Settings
from bot.core.models import ActionItem, ActionItemStatus, Incident
from bot.core.rendering import escape_mrkdwn, format_instant
from bot.domain.incidents import display_id
from bot.loop.docs_sync import WORKDIR_LOCK, DocsSyncError, Git, clone_or_fetch
from bot.slack import blocks
from bot.slack.outbox import Priority, enqueue

NO_RUNBOOK_DAYS = 90
RUNBOOK_WORD = "runbook"


@dataclass(frozen=True)
class RunbookStatus:
    service: str
    path: str
    url: str | None
    last_change: datetime | None  # None: the file is not on the default branch
    incidents: list[Incident] = field(default_factory=list)  # of the service, triggered since
    open_items: int = 0  # open action items about the runbook, of those incidents
    stale_after: int = 2

    @property
    def stale(self) -> bool:
        return self.last_change is None or len(self.incidents) >= self.stale_after or self.open_items > 0


@dataclass(frozen=True)
class RunbookReport:
    runbooks: list[RunbookStatus]
    without_runbook: list[tuple[str, int]]  # (service, incidents in the last NO_RUNBOOK_DAYS days)

    @property
    def stale(self) -> list[RunbookStatus]:
        return [runbook for runbook in self.runbooks if runbook.stale]


def last_changes(git: Git, base: str, paths: list[str]) -> dict[str, datetime | None]:
    """Each path's last commit on the default branch (its committer date), None when it is not there."""
    found: dict[str, datetime | None] = {}
    for path in paths:
        out = git.out("log", "-1", "--format=%cI", f"origin/{base}", "--", path)
        found[path] = datetime.fromisoformat(out) if out else None
    return found


def build_report(
    *, session: Session, settings: Settings, now: datetime, changes: dict[str, datetime | None]
) -> RunbookReport:
    statuses = []
    for service, path in sorted(settings.runbooks.items()):
        last = changes.get(path)
        statement = select(Incident).where(Incident.service_name == service)
        if last is not None:
            statement = statement.where(col(Incident.triggered_at) > last)
        incidents = list(session.exec(statement.order_by(col(Incident.triggered_at), col(Incident.id))))
        open_items = 0
        if incidents:
            open_items = session.exec(
                select(func.count())
                .select_from(ActionItem)
                .where(col(ActionItem.incident_id).in_([incident.id for incident in incidents]))
                .where(ActionItem.status != ActionItemStatus.DONE)
                .where(func.lower(ActionItem.text).contains(RUNBOOK_WORD))
            ).one()
        web = settings.docs_web_dir
        url = None if web is None else web.removesuffix(settings.docs_repo_dir) + path
        statuses.append(
            RunbookStatus(service, path, url, last, incidents, open_items, settings.runbook_stale_incidents)
        )
    since = now - timedelta(days=NO_RUNBOOK_DAYS)
    recent = session.exec(
        select(Incident.service_name)
        .where(col(Incident.triggered_at) >= since, col(Incident.triggered_at) < now)
        .where(col(Incident.service_name).is_not(None))
    ).all()
    counts = Counter(name for name in recent if name and name not in settings.runbooks)
    return RunbookReport(statuses, sorted(counts.items()))


def check_runbooks(
    *, session: Session, settings: Settings, now: datetime, fetch: bool = True
) -> RunbookReport:
    """Fetch the docs repository (the docs sync's clone) and build the report. Without `fetch` (Slack's
    `/postmortem runbooks`, which must answer within 3 seconds) the clone is read as last fetched (by the
    nightly docs sync), and DocsSyncError says when there is none yet."""
    if not settings.docs_repo or not settings.runbooks:
        raise ConfigError("The runbook check needs DOCS_REPO and RUNBOOKS (see docs/runbooks.md).")
    with WORKDIR_LOCK:
        git = Git(Path(settings.docs_work_dir).resolve(), settings)
        base = clone_or_fetch(git, settings) if fetch else fetched_base(git)
        changes = last_changes(git, base, sorted(set(settings.runbooks.values())))
    return build_report(session=session, settings=settings, now=now, changes=changes)


def fetched_base(git: Git) -> str:
    """The default branch of the clone as last fetched, without contacting the remote."""
    head = ""
    if (git.workdir / ".git").is_dir():
        found = git.run("symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", check=False)
        head = found.stdout.strip()
    if not head:
        raise DocsSyncError(
            "The bot has not fetched the docs repository yet: the nightly docs sync or `postmortem-bot "
            "runbooks` does it."
        )
    return head.removeprefix("origin/")


def _incident_refs(incidents: list[Incident]) -> str:
    refs = [
        f"<#{incident.channel_id}|{display_id(incident)}>" if incident.channel_id else display_id(incident)
        for incident in incidents[:10]
    ]
    more = f" and {len(incidents) - 10} more" if len(incidents) > 10 else ""
    return ", ".join(refs) + more


def report_lines(report: RunbookReport, settings: Settings) -> list[str]:
    """The report as mrkdwn lines (the Slack message and, without markup, the command line's output)."""
    stale, fresh = report.stale, [runbook for runbook in report.runbooks if not runbook.stale]
    lines = [
        f"*Runbook check*: {len(report.runbooks)} runbooks, {len(stale)} stale, "
        f"{len(report.without_runbook)} services with incidents and no runbook"
    ]
    if stale:
        lines.append("*Stale runbooks*")
    for runbook in stale:
        name = escape_mrkdwn(runbook.service)
        where = f"<{runbook.url}|{escape_mrkdwn(runbook.path)}>" if runbook.url else f"`{runbook.path}`"
        if runbook.last_change is None:
            lines.append(f"• {name}: {where} is not in the repository")
            continue
        changed = format_instant(runbook.last_change, settings.tz, "%Y-%m-%d")
        since = f"{len(runbook.incidents)} incidents since"
        if runbook.incidents:
            since += f" ({_incident_refs(runbook.incidents)})"
        items = f", {runbook.open_items} runbook action items open" if runbook.open_items else ""
        lines.append(f"• {name}: {where} last changed {changed}, {since}{items}")
    if report.without_runbook:
        lines.append(f"*Services with incidents in the last {NO_RUNBOOK_DAYS} days and no runbook*")
        lines += [
            f"• {escape_mrkdwn(service)}: {count} incidents" for service, count in report.without_runbook
        ]
    if fresh:
        lines.append(
            "*Up to date*: "
            + ", ".join(
                f"{escape_mrkdwn(r.service)} ({len(r.incidents)} incidents since "
                f"{format_instant(r.last_change, settings.tz, '%Y-%m-%d')})"
                for r in fresh
            )
        )
    return lines


def report_message(report: RunbookReport, settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    lines = report_lines(report, settings)
    text = "\n".join(lines)
    return lines[0].replace("*", ""), [blocks.section(blocks.truncate(text, 2900))]


def runbook_check_job(
    *, session: Session, settings: Settings, now: datetime, scheduled_for: datetime
) -> RunbookReport:
    """The scheduled check (RUNBOOK_CHECK_SCHEDULE, under the lease): the report, in the post-mortems
    channel."""
    report = check_runbooks(session=session, settings=settings, now=now)
    text, message = report_message(report, settings)
    enqueue(
        session,
        key=f"runbooks:{scheduled_for.isoformat()}",
        channel=settings.postmortems_channel,
        at=now,
        text=text,
        blocks=message,
        priority=Priority.ROUTINE,
    )
    return report
