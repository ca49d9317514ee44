"""What the bot keeps of what people write in Slack, and for how long (docs/retention.md).

Kept: an incident's first-response instant and its author (the KPIs), and the messages people chose for
its timeline (a :pushpin: or the shortcut), which follow Slack: an edit replaces the stored text, a
deletion removes the entry. Slack events are recorded by id only (no text, no author), to ignore
Slack's retries; `purge` removes those records, and any older full copies, once they are old enough.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from bot.core.db import rows_changed
from bot.core.models import InboundDelivery, TimelineEntry
from bot.domain.incidents import slack_source_key

SLACK = "slack"


def _entry_of(session: Session, channel_id: str, ts: str) -> TimelineEntry | None:
    statement = select(TimelineEntry).where(col(TimelineEntry.source_key) == slack_source_key(channel_id, ts))
    return session.exec(statement).first()


def follow_edit(session: Session, *, channel_id: str, ts: str, text: str) -> int | None:
    """A message on a timeline was edited in Slack: the entry says what it says now. Returns the entry's
    incident id, or None when no entry is stored for that message."""
    entry = _entry_of(session, channel_id, ts)
    if entry is None:
        return None
    entry.text = text
    session.add(entry)
    session.flush()
    return entry.incident_id


def follow_delete(session: Session, *, channel_id: str, ts: str) -> int | None:
    """A message on a timeline was deleted in Slack: so is the entry. Returns the entry's incident id, or
    None when no entry was stored for that message."""
    entry = _entry_of(session, channel_id, ts)
    if entry is None:
        return None
    session.delete(entry)
    session.flush()
    return entry.incident_id


def purge_slack_events(session: Session, *, before: datetime) -> int:
    """Remove the records of Slack events received before `before` (Slack retries an event within the
    hour, so a day-old record dedupes nothing). Returns how many were removed."""
    statement = delete(InboundDelivery).where(
        col(InboundDelivery.source) == SLACK, col(InboundDelivery.received_at) < before
    )
    return rows_changed(session, statement)
