"""Key performance indicators of the incident loop, computed in SQL for any period [since, until).

An incident belongs to the period it was *triggered* in. Every figure is a plain aggregate (count, sum,
case) over indexed columns, so it runs the same on SQLite and PostgreSQL: services are grouped by the
stored `service_key` and repeat incidents are the stored `repeat_incident` flag (bot/core/incident_table.py),
read from partial indexes of the counted incidents; bot/loop/kpi_services.py names the services.
Means are sum/count divided in Python (PostgreSQL's avg() returns numeric, SQLite's a float: dividing
here keeps both identical); a median is the middle row (or two) of an ordered, offset query, so only those
rows leave the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import SQLColumnExpression, and_, case, func, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from bot.core.models import ActionItem, ActionItemStatus, Incident
from bot.core.rendering import format_duration, markdown_inline
from bot.core.rows import table_of
from bot.domain.incidents import counted_incidents
from bot.loop.kpi_services import current_names, service_key_for, shown_names

_DURATIONS = {
    "acknowledge": col(Incident.seconds_to_acknowledge),
    "first_response": col(Incident.seconds_to_first_response),
    "resolve": col(Incident.seconds_to_resolve),
    "document": col(Incident.seconds_to_document),
}


@dataclass
class Kpis:
    """The figures of one period, overall or for one service. Durations are seconds (None: no data)."""

    incidents: int = 0
    acknowledged: int = 0
    mean_seconds_to_acknowledge: float | None = None
    responded: int = 0
    mean_seconds_to_first_response: float | None = None
    resolved: int = 0
    mean_seconds_to_resolve: float | None = None
    median_seconds_to_resolve: float | None = None
    documented: int = 0
    mean_seconds_to_document: float | None = None
    median_seconds_to_document: float | None = None
    # Share of resolved incidents with a published post-mortem.
    documentation_compliance: float | None = None
    # Incidents whose first response came within RESPONSE_TARGET_MINUTES, and their share of all incidents
    # (an incident nobody responded to counts as a miss).
    within_target: int = 0
    within_target_share: float | None = None
    # Incidents of a service that had another incident in the 30 days before (REPEAT_WINDOW).
    repeat_incidents: int = 0
    action_items_completed: int = 0
    # Open action items whose due date had passed at the end of the period (in TIMEZONE).
    action_items_overdue: int = 0


@dataclass
class KpiReport:
    since: datetime
    until: datetime
    service: str | None
    overall: Kpis
    by_service: dict[str, Kpis] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "service": self.service,
            "overall": asdict(self.overall),
            "by_service": {name: asdict(k) for name, k in self.by_service.items()},
        }


def _mean(total: int | None, count: int) -> float | None:
    return None if not count or total is None else total / count


def _share(part: int, whole: int) -> float | None:
    return None if not whole else part / whole


def median(values: Sequence[int]) -> float | None:
    """The median of sorted integers (the mean of the two middle values for an even count)."""
    if not values:
        return None
    middle = len(values) // 2
    if len(values) % 2:
        return float(values[middle])
    return (values[middle - 1] + values[middle]) / 2


def _service_key() -> SQLColumnExpression[str | None]:
    # Grouped by the bare column (PostgreSQL refuses GROUP BY coalesce(col, <parameter>) when the
    # parameter is bound twice); incidents without a service are named in Python.
    return col(Incident.service_key)


def _triggered_at(dialect: str) -> SQLColumnExpression[datetime]:
    """triggered_at for a period's bounds. On SQLite as `+triggered_at`, which its planner cannot serve from
    the triggered_at index: without statistics on how much of the table a period covers, it took that
    index even for a whole year (a random table read per row: 30 s over 1M incidents), where a covering
    index read in the order the query needs (service, or the duration for a median) is the fast path."""
    column = col(Incident.triggered_at)
    if dialect == "sqlite":
        column_type = table_of(Incident).c.triggered_at.type
        return literal_column(f"+{Incident.__tablename__}.triggered_at", type_=column_type)
    return column


def _period(since: datetime, until: datetime, key: str | None, dialect: str) -> list[ColumnElement[bool]]:
    instant = _triggered_at(dialect)
    conditions = [instant >= since, instant < until, *counted_incidents()]
    if key is not None:
        conditions.append(_service_key() == key)
    return conditions


def compute_kpis(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    response_target_minutes: int,
    tz: ZoneInfo,
    service: str | None = None,
) -> KpiReport:
    """The KPIs of incidents triggered in [since, until), overall and per service (optionally one: its id,
    or its name when no other service has that name), each service shown as `kpi_services` names it."""
    dialect = session.get_bind().dialect.name
    current = current_names(session)
    key = None if service is None else service_key_for(current, service)
    shown = shown_names(current)
    where = _period(since, until, key, dialect)
    target = response_target_minutes * 60

    aggregates = [
        func.count(),
        *(func.count(c) for c in _DURATIONS.values()),
        *(func.sum(c) for c in _DURATIONS.values()),
        func.sum(case((col(Incident.seconds_to_first_response) <= target, 1), else_=0)),
        func.count(case((col(Incident.repeat_incident), 1))),
    ]
    grouped_rows = session.execute(
        select(_service_key(), *aggregates).where(*where).group_by(_service_key())
    ).all()
    per_service = {shown[row[0]]: _kpis_of(row[1:]) for row in grouped_rows}
    # The whole period is the sum of its services (counts and integer sums), without a second scan.
    columns = zip(*(row[1:] for row in grouped_rows), strict=True)
    overall = _kpis_of([sum(v or 0 for v in column) for column in columns]) if grouped_rows else Kpis()

    for kind, counted in (("resolve", "resolved"), ("document", "documented")):
        column, field_name = _DURATIONS[kind], f"median_seconds_to_{kind}"
        median_value = _median_in_sql(session, column, where, getattr(overall, counted))
        setattr(overall, field_name, median_value)
        for row in grouped_rows:
            kpis = per_service[shown[row[0]]]
            only = _service_key() == row[0] if row[0] is not None else _service_key().is_(None)
            median_value = _median_in_sql(session, column, [*where, only], getattr(kpis, counted))
            setattr(kpis, field_name, median_value)

    for row_key, (completed, overdue) in _action_items(session, since, until, key, tz).items():
        kpis = per_service.setdefault(shown[row_key], Kpis())
        kpis.action_items_completed, kpis.action_items_overdue = completed, overdue
        overall.action_items_completed += completed
        overall.action_items_overdue += overdue

    return KpiReport(
        since=since,
        until=until,
        service=None if key is None else shown.get(key, service),
        overall=overall,
        by_service=dict(sorted(per_service.items())),
    )


def _kpis_of(row: Sequence[Any]) -> Kpis:
    total, n_ack, n_resp, n_res, n_doc, s_ack, s_resp, s_res, s_doc, within, repeats = row
    within = int(within or 0)
    return Kpis(
        incidents=total,
        acknowledged=n_ack,
        mean_seconds_to_acknowledge=_mean(s_ack, n_ack),
        responded=n_resp,
        mean_seconds_to_first_response=_mean(s_resp, n_resp),
        resolved=n_res,
        mean_seconds_to_resolve=_mean(s_res, n_res),
        documented=n_doc,
        mean_seconds_to_document=_mean(s_doc, n_doc),
        documentation_compliance=_share(n_doc, n_res),
        within_target=within,
        within_target_share=_share(within, total),
        repeat_incidents=repeats,
    )


def _median_in_sql(
    session: Session, column: SQLColumnExpression[int | None], where: list[ColumnElement[bool]], count: int
) -> float | None:
    """The median of `column`'s `count` non-null values under `where`: the middle row, or the mean of the
    two middle rows, of the ordered values (the same figure as `median`, without fetching the rest).
    An index on (the service,) the duration and triggered_at lets the database walk to the middle and
    stop (ix_incidents_resolve, ix_incidents_service_resolve, and the same for document)."""
    if not count:
        return None
    statement = (
        select(column)
        .where(*where, column.is_not(None))
        .order_by(column)
        .offset((count - 1) // 2)
        .limit(2 - count % 2)
    )
    values = session.execute(statement).scalars()
    return median([int(value) for value in values if value is not None])


def _action_items(
    session: Session, since: datetime, until: datetime, key: str | None, tz: ZoneInfo
) -> dict[str | None, tuple[int, int]]:
    """Per service: action items completed in the period, and open ones overdue at its end."""
    end_day = until.astimezone(tz).date()
    completed = and_(
        col(ActionItem.completed_at) >= since,
        col(ActionItem.completed_at) < until,
    )
    # Open at the end of the period (done later, or not yet), and due before that day.
    overdue = and_(
        col(ActionItem.created_at) < until,
        col(ActionItem.due_date) < end_day,
        or_(
            and_(col(ActionItem.status) == ActionItemStatus.OPEN, col(ActionItem.completed_at).is_(None)),
            col(ActionItem.completed_at) >= until,
        ),
    )
    # Read from the action items (few) with each one's service looked up by the incident's key, not by
    # walking every incident for the items it has.
    service = select(_service_key()).where(col(Incident.id) == col(ActionItem.incident_id)).scalar_subquery()
    items = (
        select(
            service.label("service"),
            case((completed, 1), else_=0).label("done"),
            case((overdue, 1), else_=0).label("late"),
        )
        .where(or_(completed, overdue))
        .subquery()
    )
    totals = (func.sum(items.c.done), func.sum(items.c.late))
    statement = select(items.c.service, *totals).group_by(items.c.service)
    if key is not None:
        statement = statement.where(items.c.service == key)
    return {
        row_key: (int(done or 0), int(late or 0))
        for row_key, done, late in session.execute(statement)
        if done or late
    }


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _duration(value: float | None) -> str:
    return format_duration(None if value is None else round(value))


# (label, Kpis field, how it is shown, which way is better: "lower", "higher" or None for plain counts)
KPI_FIELDS: list[tuple[str, str, str, str | None]] = [
    ("Incidents", "incidents", "count", None),
    ("Mean time to acknowledge", "mean_seconds_to_acknowledge", "duration", "lower"),
    ("Mean time to first response", "mean_seconds_to_first_response", "duration", "lower"),
    ("First response within target", "within_target_share", "percent", "higher"),
    ("Mean time to resolve", "mean_seconds_to_resolve", "duration", "lower"),
    ("Median time to resolve", "median_seconds_to_resolve", "duration", "lower"),
    ("Mean documentation latency", "mean_seconds_to_document", "duration", "lower"),
    ("Median documentation latency", "median_seconds_to_document", "duration", "lower"),
    ("Documentation compliance", "documentation_compliance", "percent", "higher"),
    ("Repeat incidents (30 days)", "repeat_incidents", "count", "lower"),
    ("Action items completed", "action_items_completed", "count", "higher"),
    ("Action items overdue", "action_items_overdue", "count", "lower"),
]
_SHOW: dict[str, Callable[[float | None], str]] = {"count": str, "duration": _duration, "percent": _percent}


def kpi_rows(k: Kpis) -> list[tuple[str, str]]:
    """The figures as (label, shown value) rows: the CLI table, the digest, the export's README."""
    return [(label, _SHOW[kind](getattr(k, name))) for label, name, kind, _ in KPI_FIELDS]


def trend(name: str, now: Kpis, before: Kpis) -> str | None:
    """ "better", "worse" or None (no change, no data, or a plain count) for one KPI field."""
    better = next(direction for _, field_name, _, direction in KPI_FIELDS if field_name == name)
    a, b = getattr(now, name), getattr(before, name)
    if better is None or a is None or b is None or a == b:
        return None
    return "better" if (a < b) == (better == "lower") else "worse"


def kpi_table(report: KpiReport, *, markdown: bool = False) -> str:
    """One column for the whole period and one per service, as plain text or a Markdown table."""
    columns = [("All" if report.service is None else report.service, report.overall)]
    if report.service is None:
        columns += list(report.by_service.items())
    header = ["KPI", *(name for name, _ in columns)]
    body = [
        [label, *(kpi_rows(k)[index][1] for _, k in columns)]
        for index, (label, _) in enumerate(kpi_rows(report.overall))
    ]
    if markdown:
        header = [markdown_inline(name) for name in header]  # service names come from PagerDuty
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return (
        "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *body]
        )
        + "\n"
    )


def local_midnight(instant: datetime, tz: ZoneInfo) -> datetime:
    """The start (in TIMEZONE) of the day `instant` falls on, as aware UTC."""
    from datetime import UTC, time

    return datetime.combine(instant.astimezone(tz).date(), time(), tzinfo=tz).astimezone(UTC)


def local_days_before(end: datetime, tz: ZoneInfo, days: int) -> datetime:
    """`days` local days before `end` (a local midnight), daylight saving included (a day of 23 or 25 h)."""
    from datetime import UTC, time

    day = end.astimezone(tz).date() - timedelta(days=days)
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def week_before(end: datetime, tz: ZoneInfo) -> datetime:
    """Seven local days before `end` (a local midnight), daylight saving included."""
    return local_days_before(end, tz, 7)


def last_closed_week(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) of the last full local week before `now`."""
    today = local_midnight(now, tz)
    end = today
    while end.astimezone(tz).weekday() != 0:
        end = local_midnight(end - timedelta(hours=1), tz)
    return week_before(end, tz), end
