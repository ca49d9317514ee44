"""Slack's Web API rate limits, as published (https://api.slack.com/apis/rate-limits and each method's page):
per method, per workspace and app, by tier; and chat.postMessage at about one message per second per
channel, with short bursts. 429 with `Retry-After` when exceeded.

One table serves the outbox, which paces itself by it (bot/runtime/outbox_pacing.py), and the sandbox, which
enforces it when asked (bot/devtools/sandbox/). `minimum_seconds` says how long a set of calls takes at best.

The limits are modelled as GCRA (a token bucket): `burst` calls at once, then one per `interval`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    per_minute: float
    burst: int

    @property
    def interval(self) -> float:
        return 60.0 / self.per_minute


# Tier 1 "1+ per minute", Tier 2 "20+", Tier 3 "50+", Tier 4 "100+"; the bursts are our model of "a small
# amount of burst behaviour is tolerated" ... "generous burst behaviour".
TIERS = {1: Limit(1, 1), 2: Limit(20, 3), 3: Limit(50, 5), 4: Limit(100, 10)}
# Each method the bot calls, with the tier its Slack reference page gives.
METHOD_TIERS = {
    "conversations.create": 2,
    "conversations.list": 2,
    "conversations.join": 3,
    "conversations.info": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.open": 3,
    "conversations.invite": 3,
    "users.lookupByEmail": 3,
    "chat.update": 3,
    "conversations.members": 4,
    "chat.postEphemeral": 4,
    "views.open": 4,
    "views.update": 4,
    "views.push": 4,
    "views.publish": 4,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}
# chat.postMessage (a "special" tier): about one message per second per channel, short bursts allowed.
POSTING = Limit(60, 3)
POSTING_METHOD = "chat.postMessage"

Key = tuple[str, str]


def limits_for(method: str, channel: str | None = None) -> list[tuple[Key, Limit]]:
    """The limits one call of `method` (into `channel`) counts against."""
    found: list[tuple[Key, Limit]] = []
    if method in METHOD_TIERS:
        found.append((("method", method), TIERS[METHOD_TIERS[method]]))
    if method == POSTING_METHOD and channel:
        found.append((("channel", channel), POSTING))
    return found


def minimum_seconds(calls: Iterable[tuple[str, str | None]]) -> float:
    """The least time Slack's limits allow for `calls` (method, channel) starting from rest: the slowest
    limit's (n - burst) intervals."""
    counts: Counter[Key] = Counter()
    limits: dict[Key, Limit] = {}
    for method, channel in calls:
        for key, limit in limits_for(method, channel):
            counts[key] += 1
            limits[key] = limit
    return max(
        (max(0, n - limits[key].burst) * limits[key].interval for key, n in counts.items()), default=0.0
    )


class RateGate:
    """GCRA over keys, on a clock the caller passes (seconds): `wait` says how long until a call may go,
    `take` records one, `hold` blocks a key until an instant (a 429's Retry-After)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[Key, float] = {}  # each key's theoretical arrival time

    def wait(self, limits: list[tuple[Key, Limit]], now: float) -> float:
        with self._lock:
            waits = [
                self._tat.get(key, now) - (limit.burst - 1) * limit.interval - now for key, limit in limits
            ]
        return max([0.0, *waits])

    def take(self, limits: list[tuple[Key, Limit]], now: float) -> None:
        with self._lock:
            for key, limit in limits:
                self._tat[key] = max(self._tat.get(key, now), now) + limit.interval

    def hold(self, limits: list[tuple[Key, Limit]], until: float) -> None:
        with self._lock:
            for key, limit in limits:
                self._tat[key] = max(self._tat.get(key, until), until + (limit.burst - 1) * limit.interval)
