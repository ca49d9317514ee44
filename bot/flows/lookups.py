"""What a person asks to see: recent incidents, their open action items, a post-mortem's revisions and
their App Home tab. Reads only; each answers with what Slack shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.core.rendering import escape_mrkdwn, format_instant
from bot.domain.action_items import open_items_for
from bot.domain.incidents import display_id, public_title, recent_incidents
from bot.domain.postmortems import postmortem_for, revisions_of
from bot.domain.reviews import postmortem_status
from bot.flows.context import Runtime
from bot.flows.postmortems import channel_postmortem
from bot.loop.docs_sync import DocsSyncError
from bot.loop.home_content import home_content
from bot.loop.runbooks import check_runbooks, report_lines
from bot.slack.home_view import app_home
from bot.slack.messages import issue_link


def incident_list(runtime: Runtime) -> str:
    """`/postmortem list`: recent incidents and their post-mortem status (private ones stay private)."""
    with runtime.read() as session:
        lines = []
        for incident in recent_incidents(session=session, limit=15):
            postmortem = postmortem_for(session=session, incident=incident)
            status = postmortem_status(postmortem)
            where = f" in <#{incident.channel_id}>" if incident.channel_id else ""
            lines.append(
                f"• *{display_id(incident)}* {escape_mrkdwn(public_title(incident, postmortem))}{where}: "
                f"incident {incident.status}, post-mortem {status}"
            )
    if not lines:
        return "No incidents yet. Declare one with `/postmortem new <title>`."
    return "*Recent incidents*\n" + "\n".join(lines)


def my_actions(runtime: Runtime, user_id: str) -> str:
    """`/postmortem actions`: the person's open action items, soonest due first."""
    with runtime.read() as session:
        items = open_items_for(session=session, owner_id=user_id)
    if not items:
        return "You have no open action items. :tada:"
    lines = []
    for item in items:
        due = f" · due {item.due_date.isoformat()}" if item.due_date else ""
        where = f" in <#{item.channel_id}>" if item.channel_id else ""
        lines.append(
            f"• {escape_mrkdwn(item.text)}{due} · incident *{item.incident_ref}* "
            f"{escape_mrkdwn(item.incident_title)}{where}{issue_link(item.issue)}"
        )
    return f"*Your open action items ({len(items)})*\n" + "\n".join(lines)


def history(runtime: Runtime, channel_id: str) -> str:
    """`/postmortem history`: who changed which fields of the channel's post-mortem, when."""
    tz = runtime.settings.tz
    with runtime.read() as session:
        incident, postmortem = channel_postmortem(session, channel_id)
        lines = [
            f"• *{r.number}* {format_instant(r.created_at, tz)} <@{r.author_id}> {r.action}: "
            + (", ".join(r.changed_fields) or "no changes")
            for r in revisions_of(session=session, postmortem=postmortem)
        ]
    return f"*Revisions of the post-mortem for {display_id(incident)}*\n" + "\n".join(lines)


def home_view(runtime: Runtime, user_id: str, at: datetime) -> dict[str, Any]:
    """A person's App Home tab, built from the database now."""
    settings = runtime.settings
    with runtime.read() as session:
        content = home_content(
            session=session,
            user_id=user_id,
            now=at,
            tz=settings.tz,
            response_target_minutes=settings.response_target_minutes,
        )
    return app_home(content, tz=settings.tz, target_minutes=settings.response_target_minutes)


def runbook_report(runtime: Runtime, at: datetime) -> str:
    """`/postmortem runbooks`: the runbook check's report, from the docs repository as last fetched."""
    settings = runtime.settings
    if not settings.docs_repo or not settings.runbooks:
        return "The runbook check is not set up: it needs `DOCS_REPO` and `RUNBOOKS` (see docs/runbooks.md)."
    try:
        with runtime.read() as session:
            report = check_runbooks(session=session, settings=settings, now=at, fetch=False)
    except DocsSyncError as exc:
        return str(exc)
    return "\n".join(report_lines(report, settings))
