"""`GET /metrics`: the loop's figures in Prometheus' text format, computed by a refresh, served by a scrape.

Design (docs/metrics.md says why):
- A scrape never queries the database: it serves the last snapshot. `MetricsSnapshot.refresh()` computes
  every figure (at start-up, so the first scrape has them, then every METRICS_REFRESH_SECONDS), so a
  scrape costs the same with 1k or 1M incidents.
- KPIs are gauges over standard windows: `window="1d"`, `"7d"`, `"30d"` are the last 1, 7 or 30 local
  days (TIMEZONE, daylight saving included) up to the end of today. They are computed by `compute_kpis`,
  the code behind `postmortem-bot kpis`, so `kpis --since <first day> --until <tomorrow> --json` prints the
  same figures; history counts from the first scrape; a late delivery that corrects an instant changes a
  gauge, never a counter backwards. Overall figures have an empty `service` label (Prometheus reads it as
  no label), per-service ones name the service.
- The only counter, `postmortem_bot_incidents_total{service,urgency}`, counts incident rows, which are
  never deleted.
- Every replica answers the same figures (they come from the shared database).

Nothing here is built at import time: each runtime has its own MetricsSnapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, case, func, literal_column, select
from sqlmodel import Session, col

from bot.core.clock import utcnow
from bot.core.config import Settings
from bot.core.db import read_scope
from bot.core.models import ActionItem, ActionItemStatus, Incident, OutboxStatus
from bot.domain.deliveries import backlog
from bot.domain.incidents import counted_incidents
from bot.domain.pagerduty import SOURCE as PAGERDUTY
from bot.loop.kpi_services import current_names, shown_names
from bot.loop.kpis import Kpis, compute_kpis
from bot.loop.wins import slow_runs
from bot.slack.outbox import depth, oldest_pending
from bot.trackers.links import tracker_backlog

PREFIX = "postmortem_bot"
NO_URGENCY = "unknown"
# The dashboard's windows: the last N local days up to the end of today.
WINDOWS: dict[str, int] = {"1d": 1, "7d": 7, "30d": 30}

# Kpis field -> (metric name without prefix, help). Durations in seconds, shares as ratios.
KPI_METRICS: dict[str, tuple[str, str]] = {
    "incidents": ("kpi_incidents", "Incidents triggered in the window."),
    "acknowledged": ("kpi_acknowledged_incidents", "Incidents of the window acknowledged."),
    "mean_seconds_to_acknowledge": ("kpi_mean_time_to_acknowledge_seconds", "Mean time to acknowledge."),
    "responded": ("kpi_responded_incidents", "Incidents of the window with a first human response."),
    "mean_seconds_to_first_response": (
        "kpi_mean_time_to_first_response_seconds",
        "Mean time from trigger to the first human message in the incident channel.",
    ),
    "resolved": ("kpi_resolved_incidents", "Incidents of the window resolved."),
    "mean_seconds_to_resolve": ("kpi_mean_time_to_resolve_seconds", "Mean time to resolve."),
    "median_seconds_to_resolve": ("kpi_median_time_to_resolve_seconds", "Median time to resolve."),
    "documented": ("kpi_documented_incidents", "Incidents of the window with a published post-mortem."),
    "mean_seconds_to_document": (
        "kpi_mean_documentation_latency_seconds",
        "Mean time from resolution to the published post-mortem.",
    ),
    "median_seconds_to_document": (
        "kpi_median_documentation_latency_seconds",
        "Median time from resolution to the published post-mortem.",
    ),
    "documentation_compliance": (
        "kpi_documentation_compliance_ratio",
        "Share of resolved incidents with a published post-mortem.",
    ),
    "within_target": (
        "kpi_within_response_target_incidents",
        "Incidents first answered within RESPONSE_TARGET_MINUTES.",
    ),
    "within_target_share": (
        "kpi_within_response_target_ratio",
        "Share of the window's incidents first answered within RESPONSE_TARGET_MINUTES.",
    ),
    "repeat_incidents": ("kpi_repeat_incidents", "Incidents of a service that had another in 30 days."),
    "action_items_completed": ("kpi_action_items_completed", "Action items completed in the window."),
    "action_items_overdue": (
        "kpi_action_items_overdue",
        "Open action items whose due date had passed at the window's end.",
    ),
}


def window_bounds(now: datetime, tz: ZoneInfo, days: int) -> tuple[datetime, datetime]:
    """[local midnight `days - 1` days ago, local midnight tomorrow), as aware UTC."""
    today = now.astimezone(tz).date()
    start, end = today - timedelta(days=days - 1), today + timedelta(days=1)
    return (
        datetime.combine(start, time(), tzinfo=tz).astimezone(UTC),
        datetime.combine(end, time(), tzinfo=tz).astimezone(UTC),
    )


@dataclass
class Figures:
    """One refresh's figures: what every scrape until the next refresh answers."""

    computed_at: datetime
    windows: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    # window -> service ("" overall) -> figures
    kpis: dict[str, dict[str, Kpis]] = field(default_factory=dict)
    incidents: dict[tuple[str, str], int] = field(default_factory=dict)
    action_items_open: int = 0
    action_items_overdue: int = 0
    outbox: dict[str, int] = field(default_factory=dict)
    outbox_oldest_pending: datetime | None = None
    inbound: dict[str, int] = field(default_factory=dict)
    trackers: dict[str, int] = field(default_factory=dict)
    unwritten: int = 0
    oldest_unwritten_resolved_at: datetime | None = None
    slow_streaks: dict[str, int] = field(default_factory=dict)

    @property
    def degraded(self) -> bool:
        return degraded(self.outbox, self.inbound, self.trackers)


def degraded(outbox: dict[str, int], inbound: dict[str, int], trackers: dict[str, int]) -> bool:
    """What the database tells of /healthz's rule: a parked outbox row, a delivery that failed eight times
    or more, or tracker work failing or parked (/healthz adds Slack's reachability, which each replica
    knows for itself)."""
    troubles = (outbox.get(OutboxStatus.PARKED.value), inbound.get("failing"))
    return any((*troubles, trackers.get("failing"), trackers.get("parked")))


def compute_figures(*, session: Session, settings: Settings, now: datetime) -> Figures:
    """Every figure /metrics shows, read from the database at `now`."""
    tz = settings.tz
    figures = Figures(computed_at=now)
    for name, days in WINDOWS.items():
        since, until = window_bounds(now, tz, days)
        report = compute_kpis(
            session=session,
            since=since,
            until=until,
            response_target_minutes=settings.response_target_minutes,
            tz=tz,
        )
        figures.windows[name] = (since, until)
        figures.kpis[name] = {"": report.overall, **report.by_service}

    # Grouped by expressions: literals, not bound parameters (PostgreSQL would see two expressions).
    urgency = func.coalesce(col(Incident.urgency), literal_column("''"))
    service = col(Incident.service_key)
    shown = shown_names(current_names(session))
    for key, level, count in session.execute(
        select(service, urgency, func.count()).where(*counted_incidents()).group_by(service, urgency)
    ).all():
        figures.incidents[(shown[key], level or NO_URGENCY)] = count

    today = now.astimezone(tz).date()
    figures.action_items_open, figures.action_items_overdue = session.execute(
        select(func.count(), func.count(case((col(ActionItem.due_date) < today, 1)))).where(
            col(ActionItem.status) == ActionItemStatus.OPEN
        )
    ).one()
    figures.outbox = depth(session)
    figures.outbox_oldest_pending = oldest_pending(session)
    figures.inbound = backlog(session, source=PAGERDUTY)
    figures.trackers = tracker_backlog(session)
    figures.unwritten, figures.oldest_unwritten_resolved_at = session.execute(
        select(func.count(), func.min(col(Incident.resolved_at))).where(
            col(Incident.resolved_at).is_not(None),
            col(Incident.postmortem_published_at).is_(None),
            *counted_incidents(),
        )
    ).one()
    figures.slow_streaks = {
        name: len(run) for name, run in slow_runs(session=session, settings=settings, now=now).items()
    }
    return figures


class MetricsSnapshot:
    """The exposition of the last figures, rendered by `refresh()` (a worker calls it; a scrape before any
    refresh computes them once), so a scrape only hands out bytes. Thread-safe."""

    def __init__(self, *, engine: Engine, settings: Settings, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._settings = settings
        self._now = now
        self._lock = threading.Lock()
        self._exposition: bytes | None = None

    def refresh(self) -> bytes:
        with read_scope(self._engine) as session:
            figures = compute_figures(session=session, settings=self._settings, now=self._now())
        # A registry of its own (never prometheus_client's global one); auto_describe=False: registering
        # must not collect (the collector has no describe()).
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FiguresCollector(figures, self._settings))
        exposition = generate_latest(registry)
        with self._lock:
            self._exposition = exposition
        return exposition

    def exposition(self) -> bytes:
        """Prometheus' text format of the last refresh."""
        with self._lock:
            exposition = self._exposition
        return exposition if exposition is not None else self.refresh()


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=value)


def _gauges_by(
    name: str, help_text: str, label: str, values: Iterable[tuple[str, float]]
) -> GaugeMetricFamily:
    """One gauge family with a sample per value of `label`."""
    family = GaugeMetricFamily(f"{PREFIX}_{name}", help_text, labels=[label])
    for label_value, value in values:
        family.add_metric([label_value], value)
    return family


def families(figures: Figures, settings: Settings) -> Iterator[Metric]:
    """The exposition of one snapshot (no database access)."""
    yield _gauge(
        "metrics_computed_timestamp_seconds", "When these figures were read.", figures.computed_at.timestamp()
    )
    yield _gauge(
        "response_target_seconds",
        "RESPONSE_TARGET_MINUTES, in seconds.",
        settings.response_target_minutes * 60,
    )
    yield _gauge("alert_mttr_seconds", "ALERT_MTTR_MINUTES, in seconds.", settings.alert_mttr_minutes * 60)
    yield _gauge("alert_consecutive_incidents", "ALERT_CONSECUTIVE.", settings.alert_consecutive)

    starts = GaugeMetricFamily(
        f"{PREFIX}_kpi_window_start_timestamp_seconds", "Start of each KPI window.", labels=["window"]
    )
    ends = GaugeMetricFamily(
        f"{PREFIX}_kpi_window_end_timestamp_seconds", "End (exclusive) of each KPI window.", labels=["window"]
    )
    for window, (since, until) in figures.windows.items():
        starts.add_metric([window], since.timestamp())
        ends.add_metric([window], until.timestamp())
    yield starts
    yield ends

    for attribute, (name, help_text) in KPI_METRICS.items():
        family = GaugeMetricFamily(
            f"{PREFIX}_{name}",
            f"{help_text} Over `window`; `service` empty for all services.",
            labels=["window", "service"],
        )
        for window, by_service in figures.kpis.items():
            for service, kpis in by_service.items():
                value = asdict(kpis)[attribute]
                if value is not None:  # no data: no sample (Grafana shows "No data", kpis --json null)
                    family.add_metric([window, service], value)
        yield family

    incidents = CounterMetricFamily(
        f"{PREFIX}_incidents", "Incidents recorded, by service and urgency.", labels=["service", "urgency"]
    )
    for (service, urgency), count in sorted(figures.incidents.items()):
        incidents.add_metric([service, urgency], count)
    yield incidents

    yield _gauge("action_items_open", "Action items not done yet.", figures.action_items_open)
    yield _gauge(
        "action_items_overdue",
        "Open action items whose due date has passed (in TIMEZONE).",
        figures.action_items_overdue,
    )
    yield _gauges_by(
        "outbox_depth",
        "Outbox rows owed to Slack (pending) or needing a person (parked).",
        "status",
        (
            (status.value, figures.outbox.get(status.value, 0))
            for status in (OutboxStatus.PENDING, OutboxStatus.PARKED)
        ),
    )
    oldest = figures.outbox_oldest_pending
    yield _gauge(
        "outbox_oldest_pending_seconds",
        "How long the oldest message owed to Slack had waited at the refresh (0: none): grows while Slack "
        "is down.",
        (figures.computed_at - oldest).total_seconds() if oldest else 0.0,
    )
    yield _gauges_by(
        "inbound_deliveries",
        "PagerDuty deliveries not processed yet: all, retrying (failed once or more), failing (8 times).",
        "state",
        figures.inbound.items(),
    )
    yield _gauges_by(
        "tracker_links",
        "Issues owed to the tracker (pending; failing: 8 attempts or more), or refused (parked).",
        "state",
        figures.trackers.items(),
    )
    yield _gauge(
        "degraded",
        "1 with parked outbox rows, failing deliveries or failing tracker work (/healthz also says degraded "
        "while Slack is down).",
        int(figures.degraded),
    )
    yield _gauge(
        "postmortems_unwritten", "Resolved incidents without a published post-mortem.", figures.unwritten
    )
    if figures.oldest_unwritten_resolved_at is not None:
        yield _gauge(
            "oldest_unwritten_postmortem_resolved_timestamp_seconds",
            "When the longest-waiting incident without a published post-mortem was resolved.",
            figures.oldest_unwritten_resolved_at.timestamp(),
        )
    yield _gauges_by(
        "slow_resolve_streak_incidents",
        "A service's latest incidents in a row that each took over ALERT_MTTR_MINUTES to resolve.",
        "service",
        sorted(figures.slow_streaks.items()),
    )


class FiguresCollector:
    def __init__(self, figures: Figures, settings: Settings) -> None:
        self._figures = figures
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        return families(self._figures, self._settings)
