"""The background thread shared by the outbox worker, the delivery processor and the metrics refresh."""

from __future__ import annotations

import logging
import threading

from bot.loop.metrics import MetricsSnapshot

log = logging.getLogger(__name__)


class PollingWorker:
    """A daemon thread that calls `run_once()` again at once while it finds work, and otherwise sleeps
    until `wake()` or `poll_interval` (work stored by another replica, or due later, is found by the
    poll). Subclasses implement `run_once() -> int`, how much work one pass did."""

    def __init__(self, *, name: str, poll_interval: float) -> None:
        self.name = name
        self._poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Work now rather than at the next poll (called when something was just stored for it)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.run_once()
            except Exception:  # the worker must outlive a database hiccup; its rows stay as they were
                log.exception("%s: pass failed", self.name)
                done = 0
            if not done:
                self._wake.wait(self._poll_interval)
                self._wake.clear()


class MetricsRefresher(PollingWorker):
    """Recomputes /metrics' figures every METRICS_REFRESH_SECONDS, so no scrape queries the database."""

    def __init__(self, snapshot: MetricsSnapshot, *, interval: float) -> None:
        super().__init__(name="metrics", poll_interval=interval)
        self._snapshot = snapshot

    def run_once(self) -> int:
        self._snapshot.refresh()
        return 0  # then sleep until the next refresh
