"""The owner lookup: asks PagerDuty for the owner of each service whose lookup is owed
(bot/domain/owners.py), on a thread of its own, never on the webhook's path nor in the Slack outbox (a
PagerDuty outage must not hold up Slack messages).

A lookup is leased before PagerDuty is called (replicas never ask twice at once; one that dies mid-way
leaves it due again after LEASE). A failure (an outage, a time-out, a bad key) keeps the error on the row
and is retried after a back-off of 2, 4, 8 ... s up to OUTBOX_MAX_BACKOFF_SECONDS; a 429 after its
Retry-After.
Nothing is lost meanwhile: the card shows no owner until PagerDuty answers, then it is updated."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import col, select

from bot.core.clock import utcnow
from bot.core.config import Settings
from bot.core.db import read_scope, session_scope
from bot.core.service_owners import ServiceOwnerLookup
from bot.domain.owners import claim_lookup, record_lookup_failure
from bot.flows.owners import owner_looked_up
from bot.runtime.outbox_errors import backoff
from bot.runtime.pagerduty_api import PagerDutyApi, PagerDutyApiError
from bot.runtime.workers import PollingWorker

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)


class OwnerLookups(PollingWorker):
    """`run_once(now)` does every lookup that is due (tests call it; `start()` runs it on a thread)."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        pagerduty: PagerDutyApi,
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(name="owner-lookups", poll_interval=poll_interval)
        self._engine = engine
        self._settings = settings
        self._pagerduty = pagerduty
        self._max_backoff = settings.outbox_max_backoff_seconds
        self._clock = clock

    def run_once(self, now: datetime | None = None) -> int:
        done = 0
        while not self._stop.is_set() and self._anything_due(now or self._clock()):
            with session_scope(self._engine) as session:
                service_id = claim_lookup(session, now=now or self._clock(), lease=LEASE)
            if service_id is None:
                break
            self._look_up(service_id)
            done += 1
        return done

    def _anything_due(self, now: datetime) -> bool:
        # Look before locking: an idle poll is a read, not a turn in SQLite's writer queue.
        with read_scope(self._engine) as session:
            due = select(ServiceOwnerLookup.service_id).where(col(ServiceOwnerLookup.next_lookup_at) <= now)
            return session.exec(due.limit(1)).first() is not None

    def _look_up(self, service_id: str) -> None:
        try:
            found = self._pagerduty.service_owner(service_id)
        except (PagerDutyApiError, OSError, ValueError) as exc:  # ValueError: a body that is not JSON
            with session_scope(self._engine) as session:
                row = session.get(ServiceOwnerLookup, service_id)
                attempts = (row.attempts if row else 0) + 1
                after = getattr(exc, "retry_after", None) or backoff(attempts, self._max_backoff)
                record_lookup_failure(
                    session,
                    service_id=service_id,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_at=self._clock() + timedelta(seconds=after),
                )
            log.warning("owner of PagerDuty service %s: %s; asked again in %.1f s", service_id, exc, after)
            return
        with session_scope(self._engine) as session:
            owner_looked_up(
                session, settings=self._settings, service_id=service_id, found=found, at=self._clock()
            )
