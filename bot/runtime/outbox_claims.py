"""The outbox's queue side: which due rows a worker takes (claims), in what order, and giving rows back.

Several workers (threads or replicas) share one table: a row is leased (`claimed_until`) inside a
`SELECT ... FOR UPDATE SKIP LOCKED` transaction (`BEGIN IMMEDIATE` on SQLite), so two workers never hold
the same row, and the Slack call happens after that transaction, outside any lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, or_, update
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists
from sqlmodel import col, select

from bot.core.db import read_scope, session_scope
from bot.core.models import OutboxMessage, OutboxStatus


def claim_due(
    engine: Engine, *, worker: str, now: datetime, lease: float, batch: int
) -> list[tuple[OutboxMessage, bool]]:
    """Lease up to `batch` due rows to `worker` for `lease` seconds. The lease is written in the same
    transaction that locked the rows (SKIP LOCKED: a concurrent worker skips them instead of waiting), so
    two workers never hold the same row. Each row comes with `retried`: True when it was tried before,
    which is when the delivery first checks whether Slack already has the message."""
    earlier = aliased(OutboxMessage)

    def earlier_pending(same: ColumnElement[bool]) -> Exists:
        return (
            select(earlier.id)
            .where(same, col(earlier.id) < col(OutboxMessage.id), earlier.status == OutboxStatus.PENDING)
            .exists()
        )

    due = (
        select(OutboxMessage.id, OutboxMessage.claimed_until)
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
        .where(or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now))
        # One logical message is sent in order: its update waits for its first post. And what follows a
        # logical message (a card, a summary, a digest) in its channel waits for it: a prompt never
        # overtakes its card, even while the card is retried. Other rows block nothing when they fail.
        .where(
            or_(
                col(OutboxMessage.message_key).is_(None),
                ~earlier_pending(col(earlier.message_key) == col(OutboxMessage.message_key)),
            )
        )
        .where(
            ~earlier_pending(
                and_(
                    col(earlier.channel) == col(OutboxMessage.channel), col(earlier.message_key).is_not(None)
                )
            )
        )
        # Urgent work first (a new incident's channel and card before a digest), then oldest first.
        .order_by(col(OutboxMessage.priority), col(OutboxMessage.id))
    )
    # Look before locking: an idle poll (4 a second) is then a read beside the writers, not a turn in
    # SQLite's writer queue; the claim below checks again under the lock.
    with read_scope(engine) as session:
        if session.execute(due.limit(1)).first() is None:
            return []
    with session_scope(engine) as session:
        found = list(session.execute(due.limit(batch).with_for_update(skip_locked=True, of=OutboxMessage)))
        if not found:
            return []
        ids = [row_id for row_id, _ in found]
        # A claim that was never released means its worker died mid-delivery.
        abandoned = {row_id for row_id, claimed_until in found if claimed_until is not None}
        session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids))
            .values(claimed_by=worker, claimed_until=now + timedelta(seconds=lease))
        )
        rows = list(
            session.exec(
                select(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids))
                .order_by(col(OutboxMessage.priority), col(OutboxMessage.id))
            )
        )
    return [(row, row.attempts > 0 or row.id in abandoned) for row in rows]


def give_back(engine: Engine, rows: Sequence[tuple[OutboxMessage, datetime | None]]) -> None:
    """Release claimed rows without an attempt: due again at once (None), or at the instant given (when
    Slack's rate limits let them go)."""
    if not rows:
        return
    with session_scope(engine) as session:
        for row, due in rows:
            values: dict[str, object] = {"claimed_until": None}
            if due is not None:
                values["next_attempt_at"] = due
            session.execute(update(OutboxMessage).where(col(OutboxMessage.id) == row.id).values(**values))
