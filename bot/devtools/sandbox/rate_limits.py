"""Slack's published rate limits (bot/slack/rate_limits.py: each method's tier, per workspace and app;
chat.postMessage about once a second per channel), enforced by the sandbox when switched on.

Each call counts, as with Slack; a call over a limit gets 429 with an integer `Retry-After` and has no
effect. `clock` (seconds) may run faster than the wall clock, so a storm that takes ten minutes of Slack
time takes seconds in a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bot.slack.rate_limits import RateGate, limits_for


class RateLimits:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.enforced = False
        self.clock = clock
        self._gate = RateGate()

    def refuse(self, method: str, args: dict[str, Any]) -> int | None:
        """The Retry-After (seconds) for a call over its limits, or None: the call may go (and counts)."""
        if not self.enforced:
            return None
        limits = limits_for(method, str(args.get("channel") or ""))
        now = self.clock()
        wait = self._gate.wait(limits, now)
        if wait > 0:
            return math.ceil(wait)
        self._gate.take(limits, now)
        return None
