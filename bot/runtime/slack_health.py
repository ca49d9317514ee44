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
from bot.core.config import Settings
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


class ChannelResolver(PollingWorker):
    """Resolves and joins the configured channels (POSTMORTEMS_CHANNEL, WINS_CHANNEL). Tried once at
    start-up, so a typo shows then; what could not be resolved because Slack was unreachable is tried
    again every `poll_interval` until Slack answers (the bot serves meanwhile)."""

    def __init__(
        self, *, channels: ChannelDirectory, settings: Settings, health: SlackHealth, poll_interval: float
    ) -> None:
        super().__init__(name="channel-resolver", poll_interval=poll_interval)
        self._channels = channels
        self._health = health
        health.on_recovery(self.wake)
        self.pending = {
            setting: getattr(settings, setting) for setting in ("postmortems_channel", "wins_channel")
        }

    def run_once(self) -> int:
        for setting, name in list(self.pending.items()):
            try:
                self._channels.join(self._channels.resolve(name))
            except (SlackRequestError, OSError) as exc:
                self._health.unreachable(f"{type(exc).__name__}: {exc}", utcnow())
                log.warning("%s=%r not resolved yet: Slack is unreachable (retried)", setting.upper(), name)
                return 0
            except (ChannelNotFound, SlackApiError) as exc:
                log.warning("%s=%r: %s (messages for it wait in the outbox)", setting.upper(), name, exc)
            else:
                log.info("%s=%r resolved", setting.upper(), name)
            self._health.answered()
            del self.pending[setting]
        if not self.pending:
            self._stop.set()
        return 0
