"""What the bot keeps of what people write in Slack, and for how long (docs/retention.md).

Kept: an incident's first-response instant and its author (the KPIs), and the messages people chose for
its timeline (a :pushpin: or the shortcut), which follow Slack: an edit replaces the stored text, a
deletion removes the entry. Slack events are recorded by id only (no text, no author), to ignore
Slack's retries; `purge` removes those records, and any older full copies, once they are old enough.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col

from bot.core.models import InboundDelivery, TimelineEntry
from bot.domain.incidents import slack_source_key

SLACK = "slack"


def follow_edit(session: Session, *, channel_id: str, ts: str, text: str) -> bool:
    """A message on a timeline was edited in Slack: the entry says what it says now. True if stored."""
    statement = (
        update(TimelineEntry)
        .where(col(TimelineEntry.source_key) == slack_source_key(channel_id, ts))
        .values(text=text)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def follow_delete(session: Session, *, channel_id: str, ts: str) -> bool:
    """A message on a timeline was deleted in Slack: so is the entry. True if one was stored."""
    statement = delete(TimelineEntry).where(col(TimelineEntry.source_key) == slack_source_key(channel_id, ts))
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def purge_slack_events(session: Session, *, before: datetime) -> int:
    """Remove the records of Slack events received before `before` (Slack retries an event within the
    hour, so a day-old record dedupes nothing). Returns how many were removed."""
    statement = delete(InboundDelivery).where(
        col(InboundDelivery.source) == SLACK, col(InboundDelivery.received_at) < before
    )
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
