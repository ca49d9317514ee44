"""The incidents table, and what is kept in it for the KPIs as incidents are written.

KPIs group incidents by service and count repeat incidents (an incident of a service that had another one in
the 30 days before). Both are stored per incident, so a KPI is an aggregate over an index and never a window
over the whole history:

- `service_key`: the PagerDuty service id; an incident without one (declared by hand, or from before the
  id was kept) groups by its name. A renamed service keeps its key; two services of one name have two.
- `repeat_incident`: settled in the same flush as the change, for the incident and for the neighbours it
  left and joined. Only a COUNTED incident's position in its service matters (its key, its trigger instant
  and its id, which breaks ties): a new one, a re-serviced one, an earlier trigger, a merge, a record-only
  incident revived, a deletion each change the flag of at most the incident itself and the next incident of
  the service it left and of the one it joined.

Rows written around the ORM (a bulk load) are settled with `recount_repeat_incidents`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Index,
    Interval,
    UniqueConstraint,
    and_,
    event,
    exists,
    func,
    inspect,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Field, SQLModel

from bot.core.db import serialize_on
from bot.core.rows import table_of

REPEAT_WINDOW = timedelta(days=30)
# The key of a service without an id: this and its name (an id never holds a colon).
NAME_KEY = "name:"
_COUNTED_SQL = "merged_into IS NULL AND recorded_only IS NULL"


def _counted_index(name: str, *columns: str) -> Index:
    """An index of the counted incidents only (see `counted`). The two columns of the filter end it (always
    NULL there): SQLite 3.40 reads a partial index alone only when it holds every column the query names."""
    filtered = (*columns, "merged_into", "recorded_only")
    return Index(name, *filtered, sqlite_where=text(_COUNTED_SQL), postgresql_where=text(_COUNTED_SQL))


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_triggered_at", "triggered_at"),
        Index("ix_incidents_resolved_at", "resolved_at"),
        Index("ix_incidents_service_triggered", "service_name", "triggered_at"),
        Index("ix_incidents_channel_id", "channel_id"),
        # A service's incidents, newest first: renaming the service renames them (pagerduty_lifecycle.py).
        Index("ix_incidents_service_id_triggered", "service_id", "triggered_at"),
        # A service's current name (its latest incident's), and the list of services (KPIs).
        Index("ix_incidents_service_key_triggered", "service_key", "triggered_at", "id"),
        # KPIs (bot/loop/kpis.py) count only COUNTED incidents: these partial indexes hold those alone, so
        # the filter is their definition. The per-service aggregates read the first alone, in service order
        # (the repeat flag included); the neighbours of an incident (`settle_repeats`) are its prefix.
        # Medians read the middle of a duration's order (per service, or overall) without sorting.
        _counted_index(
            "ix_incidents_kpi_service",
            "service_key",
            "triggered_at",
            "id",
            "seconds_to_acknowledge",
            "seconds_to_first_response",
            "seconds_to_resolve",
            "seconds_to_document",
            "repeat_incident",
        ),
        _counted_index(
            "ix_incidents_kpi_service_resolve", "service_key", "seconds_to_resolve", "triggered_at"
        ),
        _counted_index(
            "ix_incidents_kpi_service_document", "service_key", "seconds_to_document", "triggered_at"
        ),
        _counted_index("ix_incidents_kpi_resolve", "seconds_to_resolve", "triggered_at"),
        _counted_index("ix_incidents_kpi_document", "seconds_to_document", "triggered_at"),
        # The digest's "still no post-mortem" list and its count.
        Index("ix_incidents_unwritten", "postmortem_published_at", "resolved_at"),
        # A PagerDuty incident is its id within its account (numbers repeat across accounts).
        UniqueConstraint("pagerduty_account", "pagerduty_id", name="uq_incidents_pagerduty"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # PagerDuty's incident id (e.g. "Q1ABCDEF"); None for incidents declared with `/postmortem new`.
    pagerduty_id: str | None = Field(default=None, max_length=64)
    # The PagerDuty account: its web host ("acme.pagerduty.com"); "" when unknown or declared by hand.
    pagerduty_account: str = Field(default="", max_length=255)
    number: int | None = None
    title: str = Field(max_length=1024)
    service_id: str | None = Field(default=None, max_length=64)
    service_name: str | None = Field(default=None, max_length=255)
    # What KPIs group by (`service_key_of`): the service id, or "name:" and the name for an incident
    # without one (declared by hand); None without either. Kept by the events below.
    service_key: str | None = Field(default=None, max_length=300)
    urgency: str | None = Field(default=None, max_length=32)
    priority: str | None = Field(default=None, max_length=64)
    html_url: str | None = Field(default=None, max_length=1024)
    status: str = Field(default=IncidentStatus.TRIGGERED, max_length=32)
    channel_id: str | None = Field(default=None, max_length=32)
    channel_name: str | None = Field(default=None, max_length=80)
    channel_is_private: bool = False
    declared_by: str | None = Field(default=None, max_length=32)

    triggered_at: datetime
    acknowledged_at: datetime | None = None
    first_response_at: datetime | None = None
    first_responder: str | None = Field(default=None, max_length=32)
    resolved_at: datetime | None = None
    reopened_at: datetime | None = None  # the latest `incident.reopened`: resolutions before it don't count
    postmortem_published_at: datetime | None = None

    seconds_to_acknowledge: int | None = None
    seconds_to_first_response: int | None = None
    seconds_to_resolve: int | None = None
    seconds_to_document: int | None = None

    # The surviving incident's PagerDuty id when PagerDuty merged this one into it (no prompt, no KPI).
    merged_into: str | None = Field(default=None, max_length=64)
    # Why the incident is kept for the record only (no channel, prompt or KPI); None: a live incident.
    recorded_only: str | None = Field(default=None, max_length=255)
    # A counted incident whose service had another counted incident in the REPEAT_WINDOW before it (ties
    # broken by id). Written by `settle_repeats` (SQL only: the loaded object may hold a stale value).
    repeat_incident: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # PagerDuty's people on the incident ([{"id", "name"}]: assignees, added responders), invited once each.
    pagerduty_people: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )
    # Who PagerDuty assigns the incident to now (their ids in `pagerduty_people`), as of its newest event.
    pagerduty_assignees: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )

    created_at: datetime
    updated_at: datetime


def service_key_of(service_id: str | None, service_name: str | None) -> str | None:
    """What an incident's KPIs group by: its service id, else NAME_KEY and its service name, else None."""
    if service_id:
        return service_id
    return None if service_name is None else f"{NAME_KEY}{service_name}"


def counted(table: Any = None) -> list[ColumnElement[bool]]:
    """The incidents KPIs, digests, nudges and metrics count: neither merged nor kept for the record only
    (of `table`, an alias of incidents, or incidents)."""
    table = table_of(Incident) if table is None else table
    return [table.c.merged_into.is_(None), table.c.recorded_only.is_(None)]


def window_before(instant: ColumnElement[datetime], dialect: str) -> ColumnElement[Any]:
    """`instant` - REPEAT_WINDOW in SQL, exactly (to the microsecond) on both backends."""
    if dialect == "postgresql":
        # Seconds, not days: a day interval on timestamptz follows the session's daylight saving.
        seconds = int(REPEAT_WINDOW.total_seconds())
        return instant - literal_column(f"interval '{seconds} seconds'", type_=Interval)
    # SQLite keeps instants as fixed-width UTC text, "YYYY-MM-DD HH:MM:SS.ffffff": shift the whole seconds
    # by whole days with strftime and keep the fraction as it was, so text order stays time order. The
    # fraction stays out of strftime, which rounds it to milliseconds (59.9999995 s would become 60 s).
    return func.strftime(
        "%Y-%m-%d %H:%M:%S", func.substr(instant, 1, 19), f"-{REPEAT_WINDOW.days} days"
    ).concat(func.substr(instant, 20))


def recount_repeat_incidents(connection: Connection) -> None:
    """Every incident's `repeat_incident` from the whole table at once (a window over each service's
    incidents), writing only the rows whose flag changes: after rows were written around the ORM.
    A join (UPDATE ... FROM), not `id IN (...)`: PostgreSQL hashes an IN list only while it fits work_mem,
    and probes it row by row beyond that (quadratic over a million incidents)."""
    table = table_of(Incident)
    previous = func.lag(table.c.triggered_at).over(
        partition_by=table.c.service_key, order_by=(table.c.triggered_at, table.c.id)
    )
    windowed = (
        select(table.c.id, table.c.triggered_at, previous.label("previous"))
        .where(table.c.service_key.is_not(None), *counted())
        .subquery()
    )
    is_repeat = func.coalesce(
        windowed.c.previous >= window_before(windowed.c.triggered_at, connection.dialect.name), sa_false()
    )
    flags = select(windowed.c.id, is_repeat.label("flag")).subquery()
    connection.execute(
        update(table)
        .where(table.c.id == flags.c.id, table.c.repeat_incident != flags.c.flag)
        .values(repeat_incident=flags.c.flag)
    )
    # Incidents outside every service's count (no service, merged, record-only) are no repeat.
    uncounted = or_(
        table.c.service_key.is_(None), table.c.merged_into.is_not(None), table.c.recorded_only.is_not(None)
    )
    connection.execute(update(table).where(uncounted, table.c.repeat_incident).values(repeat_incident=False))


def _next_in_service(
    connection: Connection, key: str | None, instant: datetime, incident_id: int
) -> int | None:
    """The counted incident that follows (instant, incident_id) in the service `key`."""
    if key is None:
        return None
    table = table_of(Incident)
    later = or_(
        table.c.triggered_at > instant, and_(table.c.triggered_at == instant, table.c.id > incident_id)
    )
    statement = (
        select(table.c.id)
        .where(table.c.service_key == key, *counted(), later)
        .order_by(table.c.triggered_at, table.c.id)
        .limit(1)
    )
    return connection.execute(statement).scalar()


def settle_repeats(connection: Connection, incident_ids: set[int]) -> dict[int, bool]:
    """Each incident's `repeat_incident` from its service's counted incidents as they are now."""
    table, earlier = table_of(Incident), table_of(Incident).alias("earlier")
    flags = {}
    for incident_id in sorted(incident_ids):
        row = connection.execute(
            select(table.c.service_key, table.c.triggered_at, and_(*counted())).where(
                table.c.id == incident_id
            )
        ).first()
        if row is None:
            continue
        key, instant, is_counted = row
        before = or_(
            earlier.c.triggered_at < instant,
            and_(earlier.c.triggered_at == instant, earlier.c.id < incident_id),
        )
        flag = (
            bool(is_counted)
            and key is not None
            and connection.execute(
                select(
                    exists().where(
                        earlier.c.service_key == key,
                        *counted(earlier),
                        earlier.c.triggered_at >= instant - REPEAT_WINDOW,
                        before,
                    )
                )
            ).scalar_one()
        )
        connection.execute(
            update(table)
            .where(table.c.id == incident_id, table.c.repeat_incident != flag)
            .values(repeat_incident=flag)
        )
        flags[incident_id] = flag
    return flags


_POSITION = ("service_id", "service_name", "triggered_at", "merged_into", "recorded_only")


def _position(values: dict[str, Any]) -> tuple[str | None, datetime] | None:
    """Where an incident stands among its service's counted incidents; None when it is not counted."""
    if values["merged_into"] is not None or values["recorded_only"] is not None:
        return None
    return service_key_of(values["service_id"], values["service_name"]), values["triggered_at"]


@event.listens_for(Incident, "before_insert")
@event.listens_for(Incident, "before_update")
def _keep_service_key(_mapper: Any, _connection: Connection, incident: Incident) -> None:
    incident.service_key = service_key_of(incident.service_id, incident.service_name)


def _serialize_services(connection: Connection, keys: list[str | None]) -> None:
    """One transaction at a time settles a service's flags (PostgreSQL; SQLite's writers already take
    turns): two transactions adding incidents of one service at once would each miss the other's row.
    The second waits here until the first commits, then reads its row and settles the neighbours.
    Keys in order, so two transactions moving incidents between the same services cannot deadlock."""
    for key in sorted({key for key in keys if key is not None}):
        serialize_on(connection, f"repeat-incidents:{key}")


def _settle_around(
    connection: Connection, incident: Incident, positions: list[tuple[str | None, datetime] | None]
) -> None:
    assert incident.id is not None
    _serialize_services(connection, [position[0] for position in positions if position is not None])
    touched = {incident.id}
    for position in positions:
        if position is not None:
            following = _next_in_service(connection, position[0], position[1], incident.id)
            touched |= {following} if following is not None else set()
    flags = settle_repeats(connection, touched)
    if incident.id in flags:
        set_committed_value(incident, "repeat_incident", flags[incident.id])


@event.listens_for(Incident, "after_insert")
def _settle_inserted(_mapper: Any, connection: Connection, incident: Incident) -> None:
    _settle_around(connection, incident, [_position({name: getattr(incident, name) for name in _POSITION})])


@event.listens_for(Incident, "after_update")
def _settle_updated(_mapper: Any, connection: Connection, incident: Incident) -> None:
    state = inspect(incident)
    now = {name: getattr(incident, name) for name in _POSITION}
    before = dict(now)
    for name in _POSITION:
        history = state.attrs[name].history
        if history.deleted:
            before[name] = history.deleted[0]
    if before != now:
        _settle_around(connection, incident, [_position(before), _position(now)])


@event.listens_for(Incident, "after_delete")
def _settle_deleted(_mapper: Any, connection: Connection, incident: Incident) -> None:
    position = _position({name: getattr(incident, name) for name in _POSITION})
    _serialize_services(connection, [position[0]] if position else [])
    following = _next_in_service(connection, *position, incident.id) if position and incident.id else None
    if following is not None:
        settle_repeats(connection, {following})
