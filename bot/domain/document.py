"""The Markdown post-mortem document, and what it and the Slack summary show (computed once).

Rendered when a post-mortem is published and whenever what it shows changes (bot/flows/ decides when).
User text in it never makes structure (bot/core/rendering.py `markdown_text`), and people appear by name,
their Slack id kept in the link to them (`slack://user?team=T…&id=U…`, Slack's deep link).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.core.models import ActionItem, Incident, Postmortem, TimelineEntry
from bot.core.rendering import (
    format_duration,
    format_instant,
    markdown_inline,
    markdown_text,
    render,
    slack_markdown,
)
from bot.domain.action_items import action_items_of
from bot.domain.incidents import display_id, slugify

MAX_SLUG = 60


def file_ref(incident: Incident) -> str:
    """The incident's part of its file name, stable for the incident: a PagerDuty number alone is not
    (two accounts both have an incident #37), so PagerDuty incidents carry their id too; `d-7` for one
    declared without PagerDuty."""
    parts = [f"inc-{incident.number}"] if incident.number is not None else []
    parts += [f"pd-{slugify(incident.pagerduty_id)}"] if incident.pagerduty_id else []
    return "-".join(parts) or f"d-{incident.id}"


def legacy_file_ref(incident: Incident) -> str | None:
    """The name earlier versions gave a PagerDuty incident's file (`inc-<number>`), replaced on export."""
    if incident.pagerduty_id is not None and incident.number is not None:
        return f"inc-{incident.number}"
    return None


def document_filename(incident: Incident, tz: ZoneInfo) -> str:
    """`2026-11-20-inc-1234-pd-q1abc-checkout-is-down.md` (`d-7` for an incident declared without
    PagerDuty): the document's name in an export or the docs repository."""
    slug = slugify(incident.title)[:MAX_SLUG].rstrip("-")
    day = format_instant(incident.triggered_at, tz, "%Y-%m-%d")
    return f"{day}-{file_ref(incident)}{'-' + slug if slug else ''}.md"


_MENTION_PREFIX, _MENTION_SUFFIX = "<@", ">"


@dataclass(frozen=True)
class Person:
    """Who a Slack user id is, as `users.info` tells (bot/slack/people.py looks them up)."""

    id: str
    name: str
    team_id: str | None = None


# A user id -> the person, or None when unknown (no Slack at hand, or Slack does not know them).
PeopleLookup = Callable[[str], Person | None]


def nobody_known(_user_id: str) -> Person | None:
    return None


def person_markdown(user_id: str, lookup: PeopleLookup) -> str:
    """`[@Alice Smith](slack://user?team=T1&id=U1)`; `@U1` (the id alone, readable) when not known."""
    person = lookup(user_id)
    if person is None:
        return markdown_inline(f"@{user_id}")
    query = urlencode({"team": person.team_id, "id": person.id} if person.team_id else {"id": person.id})
    return f"[{markdown_inline('@' + person.name)}](slack://user?{query})"


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


def render_document(
    *,
    session: Session,
    incident: Incident,
    postmortem: Postmortem,
    tz: ZoneInfo,
    people: PeopleLookup = nobody_known,
) -> str:
    """The Markdown post-mortem (summary, impact, root cause, timings, timeline, action-item checklist)."""
    context = document_context(session=session, incident=incident, postmortem=postmortem, tz=tz)

    def person(user_id: str) -> str:
        return person_markdown(user_id, people)

    def author(entry: TimelineEntry) -> str:
        """A Slack author is stored as their mention, a PagerDuty one by name."""
        value = entry.author or ""
        if value.startswith(_MENTION_PREFIX) and value.endswith(_MENTION_SUFFIX):
            return person(value[len(_MENTION_PREFIX) : -len(_MENTION_SUFFIX)])
        return markdown_inline(value)

    def entry_text(entry: TimelineEntry) -> str:
        # A pinned message is Slack's text (mrkdwn, escaped by Slack); PagerDuty's is plain.
        if entry.kind == "message":
            return slack_markdown(entry.text, person, inline=True)
        return markdown_inline(entry.text)

    def field(text: str | None) -> str:
        """A typed form field: raw text, shown exactly as typed (a typed `<!channel>` is just text)."""
        return markdown_text(text) if text else "_Not written yet._"

    return render(
        "postmortem.md.j2",
        **context,
        person=person,
        author=author,
        entry_text=entry_text,
        field=field,
    )
