"""Fault switches: make the sandbox's Web API fail the way Slack sometimes does.

The kinds:

- ``ratelimited``: HTTP 429 with a ``Retry-After`` header and ``{"ok": false, "error": "ratelimited"}``.
- ``server_error``: HTTP 500, ``internal_error``.
- ``unavailable``: HTTP 503, ``service_unavailable``.
- ``timeout``: the answer comes only after ``timeout_seconds`` (set it above the client's timeout).
- ``applied_timeout``: the call *takes effect* (a message is posted), then the answer comes only after
  ``timeout_seconds``, as a 504. Slack does this too: the client times out although the post went
  through, which is how a retry can post a message twice.
- ``unreachable``: the connection is closed without an answer, as when Slack (or the way to it) is down.
  ``fail_rate(1.0, kinds=["unreachable"])`` is an outage; ``clear()`` ends it.

Except ``applied_timeout``, a faulted call never changes workspace state; every faulted call is
recorded in the call log with its error.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("ratelimited", "server_error", "unavailable", "timeout", "applied_timeout", "unreachable")


@dataclass(frozen=True)
class Fault:
    """One failure to inject into one Web API call."""

    kind: str
    retry_after: int = 1
    timeout_seconds: float = 35.0

    @property
    def status(self) -> int:
        return {
            "ratelimited": 429,
            "server_error": 500,
            "unavailable": 503,
            "timeout": 504,
            "applied_timeout": 504,
            "unreachable": 0,
        }[self.kind]

    @property
    def error(self) -> str:
        return {
            "ratelimited": "ratelimited",
            "server_error": "internal_error",
            "unavailable": "service_unavailable",
            "timeout": "timeout",
            "applied_timeout": "timeout",
            "unreachable": "unreachable",
        }[self.kind]


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    kinds = tuple(kinds)
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"fault kinds must be some of {KINDS}, got {kinds}")
    return kinds


class Faults:
    """Thread-safe fault switches, consulted before each Web API call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self._rate = 0.0
            self._rate_kinds: tuple[str, ...] = ()
            self._rate_methods: frozenset[str] | None = None
            self._retry_after = 1
            self._timeout_seconds = 35.0
            self._random = random.Random(0)
            self._next: list[tuple[str, Fault]] = []
            self._delay = 0.0
            self._delay_methods: frozenset[str] | None = None

    def fail_rate(
        self,
        rate: float,
        *,
        kinds: Iterable[str] = ("ratelimited", "server_error", "timeout"),
        retry_after: int = 1,
        methods: Iterable[str] | None = None,
        seed: int | None = 1,
        timeout_seconds: float = 35.0,
    ) -> None:
        """Fail a share `rate` (0..1) of calls (to `methods`, or all) with a kind drawn from `kinds`.

        The draw is seeded, so a failing run can be replayed.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._rate = rate
            self._rate_kinds = _check_kinds(kinds)
            self._rate_methods = frozenset(methods) if methods is not None else None
            self._retry_after = retry_after
            self._timeout_seconds = timeout_seconds
            self._random = random.Random(seed)

    def fail_next(
        self,
        method: str,
        kind: str = "ratelimited",
        count: int = 1,
        *,
        retry_after: int = 1,
        timeout_seconds: float = 35.0,
    ) -> None:
        """Fail the next `count` calls to `method` ("*" for any method) with `kind`."""
        _check_kinds([kind])
        with self._lock:
            fault = Fault(kind, retry_after=retry_after, timeout_seconds=timeout_seconds)
            self._next.extend([(method, fault)] * count)

    def delay(self, seconds: float, methods: Iterable[str] | None = None) -> None:
        """Answer every call (to `methods`, or all) only after `seconds`; 0 switches it off."""
        with self._lock:
            self._delay = seconds
            self._delay_methods = frozenset(methods) if methods is not None else None

    def delay_for(self, method: str) -> float:
        with self._lock:
            if self._delay_methods is None or method in self._delay_methods:
                return self._delay
            return 0.0

    def pick(self, method: str) -> Fault | None:
        """The fault to apply to this call of `method`, if any (consumes a ``fail_next``)."""
        with self._lock:
            for i, (target, fault) in enumerate(self._next):
                if target in (method, "*"):
                    del self._next[i]
                    return fault
            targeted = self._rate_methods is None or method in self._rate_methods
            if self._rate and targeted and self._random.random() < self._rate:
                kind = self._random.choice(self._rate_kinds)
                return Fault(kind, retry_after=self._retry_after, timeout_seconds=self._timeout_seconds)
            return None
