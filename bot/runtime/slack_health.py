"""Whether Slack answers: what the outbox worker and the start-up resolver last saw, for /healthz.

The bot keeps working while Slack is unreachable (webhooks are stored, the outbox waits); this is how a
person sees why nothing reaches Slack, and since when.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.core.clock import utcnow
from bot.runtime.workers import PollingWorker
from bot.slack.channels import ChannelDirectory, ChannelNotFound

log = logging.getLogger(__name__)


class SlackHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: datetime | None = None
        self._error: str | None = None
        self._on_recovery: list[Callable[[], None]] = []

    def on_recovery(self, callback: Callable[[], None]) -> None:
        """Run `callback` when Slack answers again after being unreachable."""
        self._on_recovery.append(callback)

    def unreachable(self, error: str, at: datetime) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = at
                log.warning("Slack is unreachable: %s (what the bot owes it waits)", error)
            self._error = error

    def answered(self) -> bool:
        """Slack answered a call; True when it had been unreachable until now."""
        with self._lock:
            was_down, self._down_since, self._error = self._down_since, None, None
        if was_down is None:
            return False
        log.warning("Slack answers again (unreachable since %s)", was_down.isoformat())
        for callback in self._on_recovery:
            callback()
        return True

    @property
    def up(self) -> bool:
        with self._lock:
            return self._down_since is None

    def state(self) -> dict[str, Any]:
        with self._lock:
            if self._down_since is None:
                return {"status": "ok"}
            return {"status": "unreachable", "since": self._down_since.isoformat(), "error": self._error}


class SlackStartup(PollingWorker):
    """What start-up needs from Slack: each task is tried once at start-up (so a typo or a bad token
    shows then); one that fails because Slack is unreachable is tried again every `poll_interval`, and at
    once when Slack answers again, until it succeeds. The bot serves meanwhile (webhooks are stored)."""

    def __init__(
        self, *, tasks: dict[str, Callable[[], None]], health: SlackHealth, poll_interval: float
    ) -> None:
        super().__init__(name="slack-startup", poll_interval=poll_interval)
        self._health = health
        health.on_recovery(self.wake)
        self.pending = dict(tasks)

    def run_once(self) -> int:
        for name, task in list(self.pending.items()):
            try:
                task()
            except (SlackRequestError, OSError) as exc:
                self._health.unreachable(f"{type(exc).__name__}: {exc}", utcnow())
                log.warning("%s: not done yet, Slack is unreachable (tried again)", name)
                return 0
            self._health.answered()
            del self.pending[name]
        if not self.pending:
            self._stop.set()
        return 0


def join_channel(channels: ChannelDirectory, setting: str, name: str) -> Callable[[], None]:
    """Resolve and join a configured channel (POSTMORTEMS_CHANNEL, WINS_CHANNEL). One that does not exist
    is logged, not fatal: messages for it wait in the outbox."""

    def task() -> None:
        try:
            channels.join(channels.resolve(name))
        except (ChannelNotFound, SlackApiError) as exc:
            log.warning("%s=%r: %s (messages for it wait in the outbox)", setting.upper(), name, exc)

    return task
