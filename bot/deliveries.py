"""The append-only archive of raw inbound payloads (PagerDuty deliveries, Slack events).

Both sources deliver at least once (PagerDuty retries for up to 48 h, Slack up to 3 times with
`X-Slack-Retry-Num`), so the archive's unique (source, delivery_id) is also the dedupe: a delivery
id seen before changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from bot.db import insert_ignoring_duplicates
from bot.models import InboundDelivery


def archive_delivery(
    session: Session,
    *,
    source: str,
    delivery_id: str,
    event_type: str | None,
    body: str,
    at: datetime,
    processed: bool = False,
) -> bool:
    """Store a raw delivery. Returns False when (source, delivery_id) was archived before; the stored row
    is then left exactly as it was (append-only). `processed` marks it handled in the same transaction."""
    return insert_ignoring_duplicates(
        session,
        InboundDelivery,
        {
            "source": source,
            "delivery_id": delivery_id[:255],
            "event_type": (event_type or "")[:128] or None,
            "body": body,
            "received_at": at,
            "processed_at": at if processed else None,
        },
    )


def was_delivered(session: Session, *, source: str, delivery_id: str) -> bool:
    """Whether this delivery is already archived (a retry), checked before doing any slow work for it."""
    statement = select(InboundDelivery.id).where(
        InboundDelivery.source == source, InboundDelivery.delivery_id == delivery_id
    )
    return session.exec(statement).first() is not None


def unprocessed_delivery(session: Session, *, source: str, delivery_id: str) -> InboundDelivery | None:
    """The archived delivery, locked, when it still needs processing (None once processed)."""
    statement = (
        select(InboundDelivery)
        .where(InboundDelivery.source == source, InboundDelivery.delivery_id == delivery_id[:255])
        .where(col(InboundDelivery.processed_at).is_(None))
        .with_for_update()
    )
    return session.exec(statement).first()


def waiting_deliveries(session: Session, *, source: str, reason: str) -> list[InboundDelivery]:
    """Unprocessed deliveries parked with `reason` (e.g. a note that arrived before its incident)."""
    statement = (
        select(InboundDelivery)
        .where(InboundDelivery.source == source, InboundDelivery.error == reason)
        .where(col(InboundDelivery.processed_at).is_(None))
        .order_by(col(InboundDelivery.id))
        .with_for_update()
    )
    return list(session.exec(statement))
