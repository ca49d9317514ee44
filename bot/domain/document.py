"""The Markdown post-mortem document, and what it and the Slack summary show (computed once).

Rendered when a post-mortem is published and whenever what it shows changes (bot/flows/ decides when).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypedDict
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.core.models import ActionItem, Incident, Postmortem, TimelineEntry
from bot.core.rendering import format_duration, format_instant, render
from bot.domain.action_items import action_items_of
from bot.domain.incidents import display_id


def timeline_of(*, session: Session, incident: Incident) -> list[TimelineEntry]:
    statement = select(TimelineEntry).where(TimelineEntry.incident_id == incident.id)
    return list(session.exec(statement.order_by(col(TimelineEntry.occurred_at))))


class DocumentContext(TypedDict):
    """What the Markdown document and the Slack summary templates are rendered with."""

    incident: Incident
    incident_ref: str
    postmortem: Postmortem
    action_items: list[ActionItem]
    timeline: list[TimelineEntry]
    resolution_time: str
    when: Callable[[datetime | None], str]


def document_context(
    *, session: Session, incident: Incident, postmortem: Postmortem, tz: ZoneInfo
) -> DocumentContext:
    """Everything the Markdown and Slack templates show, computed once."""
    return {
        "incident": incident,
        "incident_ref": display_id(incident),
        "postmortem": postmortem,
        "action_items": action_items_of(session=session, postmortem=postmortem),
        "timeline": timeline_of(session=session, incident=incident),
        "resolution_time": (
            format_duration(postmortem.resolution_minutes * 60)
            if postmortem.resolution_minutes is not None
            else format_duration(incident.seconds_to_resolve)
        ),
        "when": lambda value: format_instant(value, tz),
    }


def render_document(*, session: Session, incident: Incident, postmortem: Postmortem, tz: ZoneInfo) -> str:
    """The Markdown post-mortem (summary, impact, root cause, timings, timeline, action-item checklist)."""
    context = document_context(session=session, incident=incident, postmortem=postmortem, tz=tz)
    return render("postmortem.md.j2", **context)
