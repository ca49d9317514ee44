"""B5: KPIs (and the weekly digest, once it exists) over 10k / 100k / 1M synthetic incidents; B8: a
/metrics scrape over the same databases, and the periodic refresh that computes what it serves.

Rows go in in bulk (executemany on SQLite, COPY on PostgreSQL), growing one database step by step. Bulk
rows bypass the ORM events that settle the repeat flags as the bot writes: they go in flagged as repeats
(all but a few are) and `recount_repeat_incidents` then corrects the few in one statement. Each step times
`compute_kpis` over the whole year (best of 3 below 1M, so a stray pause of the machine does not count;
once at 1M).
"""

from __future__ import annotations

import importlib.util
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session

from bot.core.db import make_engine, upgrade
from bot.core.incident_table import recount_repeat_incidents, service_key_of
from bot.core.models import Incident
from bot.loop.kpis import compute_kpis

START = datetime(2025, 1, 1, tzinfo=UTC)
SERVICES = [(f"PSVC{n:03d}", f"service-{n:02d}") for n in range(20)]  # (PagerDuty id, name)
COLUMNS = [
    "pagerduty_id", "number", "title", "service_id", "service_name", "service_key", "urgency", "status",
    "channel_is_private", "triggered_at", "acknowledged_at", "first_response_at", "resolved_at",
    "postmortem_published_at", "seconds_to_acknowledge", "seconds_to_first_response", "seconds_to_resolve",
    "seconds_to_document", "repeat_incident", "created_at", "updated_at",
]  # fmt: skip


def synthetic_incidents(first: int, count: int, seed: int = 6) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed + first)
    for n in range(first, first + count):
        triggered = START + timedelta(seconds=rng.randrange(365 * 86400))
        ack = rng.randrange(30, 3600) if rng.random() < 0.95 else None
        response = rng.randrange(60, 7200) if rng.random() < 0.8 else None
        resolve = rng.randrange(600, 86400) if rng.random() < 0.9 else None
        document = rng.randrange(3600, 14 * 86400) if resolve is not None and rng.random() < 0.6 else None
        service_id, service_name = SERVICES[rng.randrange(len(SERVICES))]

        def at(seconds: int | None, triggered: datetime = triggered) -> datetime | None:
            return triggered + timedelta(seconds=seconds) if seconds is not None else None

        yield {
            "pagerduty_id": f"QBENCH{n:08d}",
            "number": n,
            "title": f"Synthetic incident {n}",
            "service_id": service_id,
            "service_name": service_name,
            "service_key": service_key_of(service_id, service_name),
            # A guess the recount corrects (writing only the rows it got wrong): at 10k incidents a year
            # over 20 services, every incident but a service's first has another in the 30 days before.
            "repeat_incident": True,
            "urgency": "high",
            "status": "resolved" if resolve is not None else "acknowledged",
            "channel_is_private": False,
            "triggered_at": triggered,
            "acknowledged_at": at(ack),
            "first_response_at": at(response),
            "resolved_at": at(resolve),
            "postmortem_published_at": at(resolve + document) if resolve and document else None,
            "seconds_to_acknowledge": ack,
            "seconds_to_first_response": response,
            "seconds_to_resolve": resolve,
            "seconds_to_document": document,
            "created_at": triggered,
            "updated_at": triggered,
        }


def bulk_insert(engine: Engine, first: int, count: int) -> float:
    """Insert `count` incidents; returns the seconds it took."""
    started = time.perf_counter()
    rows = synthetic_incidents(first, count)
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY incidents ({', '.join(COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row([row[c] for c in COLUMNS])
            raw.commit()
        finally:
            raw.close()
        with engine.begin() as connection:
            recount_repeat_incidents(connection)
        # A table that has held its rows for a while has been vacuumed and analysed by autovacuum; right
        # after COPY it has not, and PostgreSQL then cannot read the KPI indexes alone (no visibility map).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE incidents")
    else:
        batch: list[dict[str, Any]] = []
        with engine.begin() as connection:
            for row in rows:
                batch.append(row)
                if len(batch) == 50_000:
                    connection.execute(insert(Incident), batch)
                    batch = []
            if batch:
                connection.execute(insert(Incident), batch)
            recount_repeat_incidents(connection)
    return time.perf_counter() - started


def time_kpis(engine: Engine, repeats: int = 3) -> tuple[float, int]:
    best, incidents = float("inf"), 0
    for _ in range(repeats):
        with Session(engine) as session:
            started = time.perf_counter()
            report = compute_kpis(
                session=session,
                since=START,
                until=START + timedelta(days=366),
                response_target_minutes=15,
                tz=UTC,
            )
            best = min(best, time.perf_counter() - started)
            incidents = report.overall.incidents
    return best, incidents


def digest_available() -> bool:
    return importlib.util.find_spec("bot.loop.digest") is not None


def time_digest(engine: Engine, repeats: int = 3) -> float:
    """The weekly digest for the last week of the synthetic year: its message and its chart."""
    from bot.core.config import load_settings
    from bot.loop.charts import render_chart
    from bot.loop.digest import digest_message

    settings = load_settings()
    week_end = START + timedelta(days=364)
    best = float("inf")
    for _ in range(repeats):
        with Session(engine) as session:
            started = time.perf_counter()
            _text, _blocks, series = digest_message(
                session=session, settings=settings, week_start=week_end - timedelta(days=7), week_end=week_end
            )
            render_chart(series, target_minutes=settings.alert_mttr_minutes)
            best = min(best, time.perf_counter() - started)
    return best


def time_scrape(engine: Engine, scrapes: int = 30) -> tuple[float, float]:
    """B8: (median seconds of one /metrics scrape, in process without HTTP, and seconds of one refresh,
    which computes the figures and renders the exposition), at the end of the synthetic year so that its
    windows hold incidents."""
    from bot.core.config import load_settings
    from bot.loop.metrics import MetricsSnapshot

    settings = load_settings()
    snapshot = MetricsSnapshot(engine=engine, settings=settings, now=lambda: START + timedelta(days=365))
    started = time.perf_counter()
    snapshot.refresh()
    refresh = time.perf_counter() - started
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        snapshot.exposition()
        times.append(time.perf_counter() - started)
    return statistics.median(times), refresh


def run(database_url: str, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        have, steps = 0, []
        for size in sizes:
            inserted = bulk_insert(engine, have + 1, size - have)
            have = size
            seconds, counted = time_kpis(engine, repeats=3 if size < 1_000_000 else 1)
            if counted != size:
                raise AssertionError(f"KPIs counted {counted} incidents, {size} were inserted")
            step = {
                "incidents": size,
                "kpis_seconds": round(seconds, 4),
                "insert_seconds": round(inserted, 2),
            }
            scrape, refresh = time_scrape(engine)
            step["scrape_seconds"], step["metrics_refresh_seconds"] = round(scrape, 9), round(refresh, 4)
            if digest_available():
                step["digest_seconds"] = round(time_digest(engine, repeats=3 if size < 1_000_000 else 1), 4)
            steps.append(step)
        return steps
    finally:
        engine.dispose()
