"""The one source of "now" for code that has no explicit `now` argument (listeners, workers)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
