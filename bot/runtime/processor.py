"""The worker that processes stored PagerDuty deliveries (bot/runtime/ingest.py stores them, durable first).

It takes the due unprocessed deliveries oldest first, each in a transaction of its own that locks the row
(`FOR UPDATE SKIP LOCKED`: replicas on one PostgreSQL never process the same row at once, and one that dies
mid-way releases it with its transaction), applies it with `bot.flows.incident_events.process_delivery`,
marks it processed, and wakes the outbox. It is woken right after each group commit, and polls too, so rows
stored by another replica, or left unprocessed by a crash, are processed (at start-up as well).

Storing comes first: after each delivery the processor waits until the ingest writer has nothing pending or
being committed (`yield_to`), for at most (1 / BUSY_SHARE - 1) times what the delivery took. At a steady
rate (B4: 50/s) the writer is idle nearly all the time and processing follows each delivery at once; in a
storm (B3: 16 senders back to back) it never is, so processing takes at most BUSY_SHARE of the time:
slowed, never stopped.

A delivery whose processing raises is rolled back to its savepoint, keeps its row with the error, and is
tried again after a back-off (2, 4, 8 ... s, at most `max_backoff`), so it blocks neither the deliveries
after it nor the worker (no hot loop)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from bot.core.clock import utcnow
from bot.core.config import Settings
from bot.core.db import read_scope, session_scope
from bot.core.rows import id_of
from bot.domain.deliveries import claim_due_delivery, due_deliveries, record_failure
from bot.domain.pagerduty import SOURCE, Outcome
from bot.flows.incident_events import process_delivery
from bot.runtime.workers import PollingWorker

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0
# The share of the time processing may take while webhooks pour in: B3 (16 concurrent senders) stored
# about 30% fewer deliveries per second with the processor running flat out beside the writer (the GIL,
# and on SQLite the one writer lock).
BUSY_SHARE = 0.03


class DeliveryProcessor(PollingWorker):
    """Processes due PagerDuty deliveries on a thread of its own; `run_once(now)` does one pass (tests)."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        on_processed: Callable[[], None] | None = None,
        yield_to: Callable[[float], object] | None = None,
        poll_interval: float = 0.5,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        super().__init__(name="delivery-processor", poll_interval=poll_interval)
        self._engine = engine
        self._settings = settings
        self._on_processed = on_processed
        self._yield_to = yield_to
        self._max_backoff = max_backoff

    def run_once(self, now: datetime | None = None) -> int:
        """Process every delivery that is due; returns how many were attempted."""
        attempted = 0
        while not self._stop.is_set() and self._anything_due(now or utcnow()):
            started = time.monotonic()
            if self.process_next(now or utcnow()) is None:
                break
            attempted += 1
            if self._yield_to is not None:
                self._yield_to((time.monotonic() - started) * (1 / BUSY_SHARE - 1))
        return attempted

    def _anything_due(self, now: datetime) -> bool:
        # Look before locking: an idle poll is then a read beside the writers, not a turn in SQLite's
        # writer queue (the same reason as the outbox's claim).
        with read_scope(self._engine) as session:
            return session.exec(due_deliveries(source=SOURCE, now=now).limit(1)).first() is not None

    def process_next(self, now: datetime) -> Outcome | Exception | None:
        """Claim and process the oldest due delivery. Returns its outcome, the exception its processing
        raised (recorded on the row, retried later), or None when nothing was due."""
        with session_scope(self._engine) as session:
            delivery = claim_due_delivery(session, source=SOURCE, now=now)
            if delivery is None:
                return None
            row_id, delivery_id, attempts = id_of(delivery), delivery.delivery_id, delivery.attempts + 1
            try:
                with session.begin_nested():
                    outcome: Outcome | Exception = process_delivery(
                        session=session, delivery=delivery, settings=self._settings, at=now
                    )
            except Exception as exc:
                delay = min(self._max_backoff, 2.0**attempts)
                log.exception(
                    "PagerDuty delivery %s (%s) failed (attempt %d); retried in %.0f s",
                    row_id,
                    delivery_id,
                    attempts,
                    delay,
                )
                record_failure(
                    session,
                    row_id=row_id,
                    error=f"{type(exc).__name__}: {exc}",
                    attempts=attempts,
                    retry_at=now + timedelta(seconds=delay),
                )
                outcome = exc
        if outcome == Outcome.PROCESSED and self._on_processed is not None:
            self._on_processed()
        return outcome
