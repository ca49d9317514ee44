"""`GET /metrics`: the loop's figures in Prometheus' text format, read from the database at scrape time.

No process-global counters: with N replicas on one database every replica would count only what it saw,
and the figures would disagree. A custom collector asks the database on each scrape instead, so every
replica answers the same numbers. Histograms are counted in SQL (one SUM(CASE ...) per bucket over the
integer seconds columns, one scan of `incidents`), so a scrape stays fast with 100k incidents.

Nothing here is built at import time: `metrics_registry()` makes a registry per runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine, SQLColumnExpression, case, func, literal_column, select
from sqlmodel import Session, col

from bot.core.clock import utcnow
from bot.core.db import read_scope
from bot.core.models import ActionItem, ActionItemStatus, Incident
from bot.loop.kpis import NO_SERVICE
from bot.slack.outbox import depth, oldest_pending
from bot.trackers.links import tracker_backlog

PREFIX = "postmortem_bot"
NO_URGENCY = "unknown"

# Seconds. 900 s is the 15-minute response target; the long tail (hours, days) is for time to resolve
# and documentation latency.
BUCKETS: tuple[int, ...] = (
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
    172800,
    259200,
    604800,
)

# metric name (without prefix and unit) -> (integer seconds column, help text)
HISTOGRAMS: dict[str, tuple[SQLColumnExpression[int | None], str]] = {
    "time_to_acknowledge": (
        col(Incident.seconds_to_acknowledge),
        "Seconds from an incident's trigger to its first acknowledgement.",
    ),
    "time_to_first_response": (
        col(Incident.seconds_to_first_response),
        "Seconds from an incident's trigger to the first human message in its channel.",
    ),
    "time_to_resolve": (
        col(Incident.seconds_to_resolve),
        "Seconds from an incident's trigger to its resolution.",
    ),
    "documentation_latency": (
        col(Incident.seconds_to_document),
        "Seconds from an incident's resolution to its published post-mortem.",
    ),
}


def histogram_name(kind: str) -> str:
    return f"{PREFIX}_{kind}_seconds"


class DatabaseCollector:
    """Reads every figure from the database when Prometheus scrapes. `now` is the clock (tests fix it);
    `tz` decides which day an action item's due date has passed on."""

    def __init__(self, *, engine: Engine, tz: ZoneInfo, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._tz = tz
        self._now = now

    def collect(self) -> Iterator[Metric]:
        with read_scope(self._engine) as session:
            yield from self._incidents(session)

            today = self._now().astimezone(self._tz).date()
            open_count, overdue_count = session.execute(
                select(
                    func.count(),
                    func.count(case((col(ActionItem.due_date) < today, 1))),
                ).where(col(ActionItem.status) == ActionItemStatus.OPEN)
            ).one()
            yield GaugeMetricFamily(
                f"{PREFIX}_action_items_open", "Action items not done yet.", value=open_count
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_action_items_overdue",
                "Open action items whose due date has passed (in TIMEZONE).",
                value=overdue_count,
            )

            outbox = GaugeMetricFamily(
                f"{PREFIX}_outbox_depth",
                "Outbox rows by status: pending rows are owed to Slack, parked ones need a person.",
                labels=["status"],
            )
            for status, count in depth(session).items():
                outbox.add_metric([status], count)
            yield outbox
            oldest = oldest_pending(session)
            yield GaugeMetricFamily(
                f"{PREFIX}_outbox_oldest_pending_seconds",
                "How long the oldest message owed to Slack has waited (0: none): grows while Slack is down.",
                value=(self._now() - oldest).total_seconds() if oldest else 0.0,
            )

            trackers = GaugeMetricFamily(
                f"{PREFIX}_tracker_links",
                "Issues owed to the tracker (pending; failing: 8 attempts or more), or refused (parked).",
                labels=["state"],
            )
            for state, count in tracker_backlog(session).items():
                trackers.add_metric([state], count)
            yield trackers

    def _incidents(self, session: Session) -> Iterator[Metric]:
        """The incident counter and every histogram from one scan of `incidents`, grouped by service and
        urgency: per column COUNT, SUM and one COUNT(CASE WHEN seconds <= le THEN 1 END) per bucket, which
        is already the cumulative count Prometheus wants. Histograms are per service: urgencies are summed
        here."""
        aggregates: list[SQLColumnExpression[int | None]] = [func.count()]
        for column, _ in HISTOGRAMS.values():
            aggregates += [func.count(column), func.sum(column)]
            # COUNT(CASE ...) with no ELSE: measured ~30% faster on SQLite than SUM(CASE ... ELSE 0 END).
            aggregates += [func.count(case((column <= le, 1))) for le in BUCKETS]
        # Grouped by expressions, not the bare columns: on SQLite the bare service_name makes the planner
        # walk the (service_name, triggered_at) index and look up every row, about twice as slow at 100k
        # incidents. Literals, not bound parameters: PostgreSQL would see two different expressions.
        service = func.coalesce(col(Incident.service_name), literal_column("''"))
        urgency = func.coalesce(col(Incident.urgency), literal_column("''"))
        rows = session.execute(
            select(service, urgency, *aggregates).group_by(service, urgency).order_by(service, urgency)
        ).all()

        incidents = CounterMetricFamily(
            f"{PREFIX}_incidents",
            "Incidents recorded, by service and urgency.",
            labels=["service", "urgency"],
        )
        width = 2 + len(BUCKETS)
        # service -> per histogram: [count, sum, cumulative bucket counts...]
        per_service: dict[str, list[list[int]]] = {}
        for row in rows:
            name = row[0] or NO_SERVICE
            incidents.add_metric([name, row[1] or NO_URGENCY], row[2])
            totals = per_service.setdefault(name, [[0] * width for _ in HISTOGRAMS])
            for index in range(len(HISTOGRAMS)):
                values = row[3 + index * width : 3 + (index + 1) * width]
                totals[index] = [a + int(b or 0) for a, b in zip(totals[index], values, strict=True)]
        yield incidents

        for index, (kind, (_, help_text)) in enumerate(HISTOGRAMS.items()):
            family = HistogramMetricFamily(histogram_name(kind), help_text, labels=["service"])
            for name, totals in per_service.items():
                count, total, *cumulative = totals[index]
                buckets = [
                    # prometheus_client.utils.floatToGoString has no annotations (str in, str out).
                    (floatToGoString(le), n)  # type: ignore[no-untyped-call]
                    for le, n in zip(BUCKETS, cumulative, strict=True)
                ]
                buckets.append(("+Inf", count))
                family.add_metric([name], buckets, total)
            yield family


def metrics_registry(
    *, engine: Engine, tz: ZoneInfo, now: Callable[[], datetime] = utcnow
) -> CollectorRegistry:
    """A registry of its own (never prometheus_client's global one) holding the database collector.

    auto_describe=False: registering must not query the database (the collector has no describe())."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine=engine, tz=tz, now=now))
    return registry
