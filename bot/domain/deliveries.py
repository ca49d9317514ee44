"""The append-only archive of raw inbound payloads (PagerDuty deliveries, Slack events).

Both sources deliver at least once (PagerDuty retries for up to 48 h, Slack up to 3 times with
`X-Slack-Retry-Num`), so the archive's unique (source, delivery_id) is also the dedupe: a delivery
id seen before changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, update
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from bot.core.db import insert_ignoring_duplicates
from bot.core.models import InboundDelivery
from bot.core.rows import table_of


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


@dataclass(frozen=True)
class RawDelivery:
    """A delivery as it arrived, before it is stored."""

    source: str
    delivery_id: str
    event_type: str | None
    body: str

    @property
    def key(self) -> tuple[str, str]:
        """What the archive's unique constraint compares (the column holds 255 characters)."""
        return self.source, self.delivery_id[:255]


_STORED_COLUMNS = ("source", "delivery_id", "event_type", "body", "received_at", "attempts")


def store_deliveries(
    connection: Connection, deliveries: Sequence[RawDelivery], *, at: datetime
) -> set[tuple[str, str]]:
    """Insert a batch of deliveries in the caller's transaction (one multi-row INSERT ... ON CONFLICT DO
    NOTHING RETURNING, the same SQL on SQLite and PostgreSQL) and return the (source, delivery_id) of
    those that were new. `deliveries` must not repeat a key: the caller decides which of two copies is
    the original.

    The statement goes straight to the DBAPI cursor: every waiting webhook depends on this one writer
    thread, and profiled under B3 it held the GIL most of the time in SQLAlchemy's statement execution
    (compiled-cache keys, execution context, result metadata), not in the database."""
    dialect = connection.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    received_type = table_of(InboundDelivery).c.received_at.type
    received_at = (received_type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value))(at)
    values = ", ".join([f"({', '.join([mark] * len(_STORED_COLUMNS))})"] * len(deliveries))
    sql = (
        f"INSERT INTO {InboundDelivery.__tablename__} ({', '.join(_STORED_COLUMNS)}) VALUES {values} "
        "ON CONFLICT DO NOTHING RETURNING source, delivery_id"
    )
    parameters: list[object] = []
    for delivery in deliveries:
        event_type = (delivery.event_type or "")[:128] or None
        parameters += [delivery.source, delivery.delivery_id[:255], event_type, delivery.body, received_at, 0]
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, parameters)
        return {(source, delivery_id) for source, delivery_id in cursor.fetchall()}
    finally:
        cursor.close()


def due_deliveries(*, source: str, now: datetime) -> SelectOfScalar[InboundDelivery]:
    """The unprocessed deliveries of `source` whose next attempt is due, oldest first."""
    return (
        select(InboundDelivery)
        .where(InboundDelivery.source == source, col(InboundDelivery.processed_at).is_(None))
        .where(
            or_(col(InboundDelivery.next_attempt_at).is_(None), col(InboundDelivery.next_attempt_at) <= now)
        )
        .order_by(col(InboundDelivery.id))
    )


def claim_due_delivery(session: Session, *, source: str, now: datetime) -> InboundDelivery | None:
    """Lock the oldest due delivery for this transaction. SKIP LOCKED: a replica processing another row
    is passed over, not waited for, and a row is never processed by two replicas at once (on SQLite the
    writer lock already serializes transactions)."""
    statement = due_deliveries(source=source, now=now).limit(1).with_for_update(skip_locked=True)
    return session.exec(statement).first()


def record_failure(session: Session, *, row_id: int, error: str, attempts: int, retry_at: datetime) -> None:
    """A processing attempt raised: keep the row unprocessed, say why, and when to try again."""
    session.execute(
        update(InboundDelivery)
        .where(col(InboundDelivery.id) == row_id)
        .values(error=error, attempts=attempts, next_attempt_at=retry_at)
    )


LONGEST_RECHECK = timedelta(minutes=5)


def recheck_waiting_at(
    delivery: InboundDelivery, *, at: datetime, longest: timedelta = LONGEST_RECHECK
) -> datetime:
    """When to look again at a delivery that waits for something (a note for an incident not seen yet).
    The incident normally replays it when it arrives; the recheck covers a replica that created the
    incident while this note was being processed elsewhere. The wait grows with the delivery's age (so
    a note whose incident never comes costs little) up to `longest`."""
    age = at - delivery.received_at
    return at + min(longest, max(timedelta(seconds=1), age))


# A delivery whose processing has raised this many times needs a person (/healthz says "degraded"); it is
# still retried every few minutes, so a fix deployed later processes it without anyone replaying it.
FAILING_AFTER_ATTEMPTS = 8


def backlog(session: Session, *, source: str) -> dict[str, int]:
    """Deliveries of `source` stored and not processed yet, how many of those failed at least once, and
    how many failed FAILING_AFTER_ATTEMPTS times or more (/healthz reports all three)."""
    attempts = col(InboundDelivery.attempts)
    unprocessed, retrying, failing = session.execute(
        select(
            func.count(),
            func.count().filter(attempts > 0),
            func.count().filter(attempts >= FAILING_AFTER_ATTEMPTS),
        ).where(InboundDelivery.source == source, col(InboundDelivery.processed_at).is_(None))
    ).one()
    return {"unprocessed": unprocessed, "retrying": retrying, "failing": failing}
