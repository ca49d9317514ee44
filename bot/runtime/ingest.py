"""Inbound deliveries stored by group commit: durable first, processed after (bot/runtime/processor.py).

A webhook may be answered 2xx only once its delivery is committed (PagerDuty does not resend what it
got a 2xx for), but a commit per request made 16 concurrent requests queue for the one SQLite writer,
or for one fsync each on PostgreSQL (B3: about 200 req/s). So request threads hand their delivery to
one writer thread, which stores whatever is pending in ONE transaction (one multi-row INSERT ... ON
CONFLICT DO NOTHING RETURNING), commits, and then wakes each waiting request with its answer: new, or
a duplicate of a delivery stored before (in an earlier batch, or earlier in the same batch).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from sqlalchemy import Connection, Engine

from bot.core.clock import utcnow
from bot.core.db import AHEAD_OF_QUEUE
from bot.domain.deliveries import RawDelivery, store_deliveries

log = logging.getLogger(__name__)

# PagerDuty waits 5 s for an answer; past this the request answers 503 (retried) instead of timing out.
STORE_TIMEOUT_SECONDS = 4.0
# Bounds one transaction: with more pending, the rest go in the next batch.
MAX_BATCH = 500


class NotStored(RuntimeError):
    """The delivery could not be committed (in time); the webhook must not answer 2xx."""


class IngestWriter:
    """One thread that commits pending deliveries in batches. `store()` blocks until its delivery's batch
    is committed. `on_stored` runs after each commit that stored something new (it wakes the processor)."""

    def __init__(self, *, engine: Engine, on_stored: Callable[[], None] | None = None) -> None:
        # Requests wait on this writer: on SQLite it goes ahead of the other writers (bot/core/db.py).
        self._engine = engine.execution_options(**{AHEAD_OF_QUEUE: True})
        self._on_stored = on_stored
        self._pending: list[tuple[RawDelivery, Future[bool]]] = []
        self._ready = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        # Set while nothing is pending or being committed (see `wait_until_idle`).
        self._idle = threading.Event()
        self._idle.set()
        # The writer thread's own connection, kept between batches (a pool checkout per batch showed in
        # the B3 profile); replaced after a failure.
        self._connection: Connection | None = None

    def start(self) -> IngestWriter:
        with self._ready:
            self._running = True
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Commit what is pending, then stop; later `store()` calls raise NotStored."""
        with self._ready:
            self._running = False
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        with self._ready:
            return self._running

    @property
    def pending(self) -> int:
        """Deliveries handed over and not committed yet (tests use it to fill one batch)."""
        with self._ready:
            return len(self._pending)

    def wait_until_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` until no delivery is pending or being committed; False when webhooks kept
        pouring in all that time. The delivery processor gives way to the writer with it
        (bot/runtime/processor.py)."""
        return self._idle.wait(timeout)

    def store(self, delivery: RawDelivery, timeout: float = STORE_TIMEOUT_SECONDS) -> bool:
        """Store `delivery` durably; True when it is new, False when its (source, delivery_id) was stored
        before. Raises NotStored when the batch failed or did not commit within `timeout`."""
        stored: Future[bool] = Future()
        with self._ready:
            if not self._running:
                raise NotStored("the ingest writer is not running")
            self._pending.append((delivery, stored))
            self._idle.clear()
            self._ready.notify()
        try:
            return stored.result(timeout)
        except FutureTimeout as exc:
            raise NotStored(f"not committed within {timeout:g} s") from exc

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._running and not self._pending:
                    self._ready.wait()
                if not self._pending:
                    break
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._commit(batch)
            with self._ready:
                if not self._pending:
                    self._idle.set()
        if self._connection is not None:
            self._connection.close()

    def _commit(self, batch: list[tuple[RawDelivery, Future[bool]]]) -> None:
        # The first copy of a delivery in the batch is the one inserted; later copies are duplicates,
        # answered only after the commit, like any duplicate (the original must be durable first).
        originals: dict[tuple[str, str], RawDelivery] = {}
        for delivery, _ in batch:
            originals.setdefault(delivery.key, delivery)
        try:
            self._connection = connection = self._connection or self._engine.connect()
            with connection.begin():
                new = store_deliveries(connection, list(originals.values()), at=utcnow())
        except Exception as exc:  # the database is down or refused: every request of the batch says so
            log.exception("storing %d inbound deliveries failed", len(batch))
            if self._connection is not None:
                self._connection.invalidate()  # the next batch starts on a fresh connection
                self._connection = None
            for _, stored in batch:
                stored.set_exception(NotStored(f"{type(exc).__name__}: {exc}"))
            return
        for delivery, stored in batch:
            stored.set_result(originals[delivery.key] is delivery and delivery.key in new)
        if new and self._on_stored is not None:
            self._on_stored()
