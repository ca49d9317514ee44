"""A service is its PagerDuty id in the KPIs: same-name services stay apart, a renamed service stays one, and
the stored repeat flags follow every change to an incident (SQLite and PostgreSQL, hand-computed figures)."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import column, insert, select, table, text, update
from sqlmodel import Session

from bot.core.db import alembic_config, make_engine, upgrade
from bot.core.incident_table import recount_repeat_incidents
from bot.core.models import Incident
from bot.loop.kpis import compute_kpis
from tests.conftest import fresh_postgres_database
from tests.factories import add_incident

SINCE = datetime(2026, 11, 16, tzinfo=UTC)
UNTIL = datetime(2026, 11, 23, tzinfo=UTC)
TABLE = Incident.__table__


def d(day: int, hour: int = 10, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def services_data_set(session: Session) -> None:
    """Two services named Checkout; PGHI789 renamed from Payments to Billing; a Checkout declared by hand
    (no id); an incident without a service. Figures for [Nov 16, Nov 23) in the tests below."""
    add_incident(session, at=d(17), service="Checkout", service_id="PABC123", resolve=600)
    add_incident(session, at=d(18), service="Checkout", service_id="PDEF456", resolve=1200)
    add_incident(session, at=d(1), service="Payments", service_id="PGHI789", resolve=60)  # before the period
    add_incident(session, at=d(17, 12), service="Payments", service_id="PGHI789", resolve=300)
    add_incident(session, at=d(20), service="Billing", service_id="PGHI789", resolve=900)
    add_incident(session, at=d(21), service="Checkout", resolve=30)
    add_incident(session, at=d(22), service=None)
    session.commit()


def report(session: Session, service: str | None = None) -> Any:
    return compute_kpis(
        session=session, since=SINCE, until=UNTIL, response_target_minutes=15, tz=UTC, service=service
    )


def test_same_name_services_stay_apart_and_a_renamed_one_is_one_row(session: Session) -> None:
    services_data_set(session)
    by_service = report(session).by_service
    assert list(by_service) == [
        "(no service)",
        "Billing",
        "Checkout",
        "Checkout (PABC123)",
        "Checkout (PDEF456)",
    ]
    figures = {
        name: (k.incidents, k.repeat_incidents, k.median_seconds_to_resolve) for name, k in by_service.items()
    }
    assert figures == {
        "(no service)": (1, 0, None),
        # Nov 17 12:00 (as Payments; Nov 1 before it) and Nov 20 (as Billing; Nov 17 before it): both repeats.
        "Billing": (2, 2, 600.0),
        "Checkout": (1, 0, 30.0),
        # One day apart, but two services: no repeat (grouped by name, the Nov 18 one would be).
        "Checkout (PABC123)": (1, 0, 600.0),
        "Checkout (PDEF456)": (1, 0, 1200.0),
    }
    assert report(session).overall.repeat_incidents == 2


def test_the_current_name_is_the_latest_incidents_even_when_an_older_one_is_written_last(
    session: Session,
) -> None:
    add_incident(session, at=d(20), service="Billing", service_id="PGHI789")
    add_incident(
        session, at=d(17), service="Payments", service_id="PGHI789"
    )  # a late delivery of an older one
    session.commit()
    assert {name: k.incidents for name, k in report(session).by_service.items()} == {"Billing": 2}


def test_cli_takes_a_service_id_or_a_name_and_refuses_a_shared_name(  # type: ignore[no-untyped-def]
    database_url: str, engine, capsys, monkeypatch
) -> None:
    from bot.cli import main

    with Session(engine) as session:
        services_data_set(session)
    monkeypatch.setenv("DATABASE_URL", database_url)
    period = ["kpis", "--since", "2026-11-16", "--until", "2026-11-23", "--json"]
    for wanted, shown, incidents in [
        ("PABC123", "Checkout (PABC123)", 1),
        ("Checkout (PDEF456)", "Checkout (PDEF456)", 1),
        ("Billing", "Billing", 2),
        ("PGHI789", "Billing", 2),
    ]:
        assert main([*period, "--service", wanted]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert (printed["service"], printed["overall"]["incidents"]) == (shown, incidents)
    assert main([*period, "--service", "Checkout"]) == 2
    error = capsys.readouterr().err
    assert "'Checkout' names 3 services: PABC123, PDEF456, Checkout (no id)" in error


def stored_flags(session: Session) -> dict[int, bool]:
    return {
        row.id: bool(row.repeat_incident)
        for row in session.execute(select(TABLE.c.id, TABLE.c.repeat_incident))
    }


def expected_flags(session: Session) -> dict[int, bool]:
    """The repeat flags by their definition, in plain Python over the rows as they are."""
    rows = session.execute(
        select(
            TABLE.c.id, TABLE.c.service_id, TABLE.c.service_name, TABLE.c.triggered_at, TABLE.c.merged_into
        )
    ).all()
    flags = {row.id: False for row in rows}
    by_service: dict[str, list[tuple[datetime, int]]] = {}
    for row in rows:
        key = row.service_id or (None if row.service_name is None else f"name:{row.service_name}")
        if key is not None and row.merged_into is None:
            by_service.setdefault(key, []).append((row.triggered_at, row.id))
    for incidents in by_service.values():
        incidents.sort()
        for (before, _), (instant, incident_id) in itertools.pairwise(incidents):
            flags[incident_id] = before >= instant - timedelta(days=30)
    return flags


def test_repeat_flags_follow_inserts_moves_merges_reservicing_and_deletions(session: Session) -> None:
    rng = random.Random(16)
    services = [("PA", "a"), ("PB", "b"), (None, "c"), (None, None)]
    base = datetime(2025, 6, 1, tzinfo=UTC)
    incidents = []
    for _ in range(60):
        service_id, name = rng.choice(services)
        at = base + timedelta(days=rng.randrange(400), hours=rng.choice([0, 0, 7]))  # ties on purpose
        incidents.append(add_incident(session, at=at, service=name, service_id=service_id))
    session.commit()
    assert stored_flags(session) == expected_flags(session)
    changes = ["earlier", "merged", "reserviced", "renamed", "deleted"]
    for step in range(40):
        incident = rng.choice(incidents)
        change = changes[step % len(changes)]
        if change == "earlier":
            incident.triggered_at -= timedelta(days=rng.randrange(1, 40))
        elif change == "merged":
            incident.merged_into = None if incident.merged_into else "QSURVIVOR"
        elif change == "reserviced":
            incident.service_id, incident.service_name = rng.choice(services)
        elif change == "renamed" and incident.service_id is None and incident.service_name is not None:
            incident.service_name = "c2" if incident.service_name == "c" else "c"
        elif change == "deleted":
            incidents.remove(incident)
            session.delete(incident)
        session.commit()
        assert stored_flags(session) == expected_flags(session), f"after step {step} ({change})"
    assert sum(stored_flags(session).values()) > 10  # the data set has repeats to lose

    # The bulk recount, from all flags wrong, agrees with what the events kept.
    kept = stored_flags(session)
    session.execute(update(TABLE).values(repeat_incident=True))
    recount_repeat_incidents(session.connection())
    assert stored_flags(session) == kept


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_postgres_database("pmb_kpi_services") as url:
        yield url


def test_the_migration_keys_and_flags_the_incidents_already_there(empty_database_url: str) -> None:
    url = empty_database_url
    config = alembic_config(url)
    before = ScriptDirectory.from_config(config).get_revision("0010_kpi_service_ids").down_revision
    command.upgrade(config, str(before))
    engine = make_engine(url)
    rows = [
        ("PABC123", "Checkout", d(17)),
        ("PDEF456", "Checkout", d(18)),
        ("PGHI789", "Payments", d(1)),
        ("PGHI789", "Billing", d(20)),
        (None, "Checkout", d(21)),
        (None, "Checkout", d(22)),
        (None, None, d(22)),
    ]
    try:
        with engine.begin() as connection:
            for number, (service_id, name, at) in enumerate(rows):
                # Only columns the table had before the migration (no service_key, no repeat_incident).
                values = {"pagerduty_id": f"Q{number}", "pagerduty_account": "", "pagerduty_people": []}
                values |= {"title": "t", "status": "triggered", "channel_is_private": False}
                values |= {"service_id": service_id, "service_name": name}
                values |= {"triggered_at": at, "created_at": at, "updated_at": at}
                then = table("incidents", *(column(name, TABLE.c[name].type) for name in values))
                connection.execute(insert(then).values(values))
        upgrade(url)
        with engine.connect() as connection:
            got = connection.execute(
                select(TABLE.c.service_key, TABLE.c.repeat_incident).order_by(TABLE.c.id)
            ).all()
    finally:
        engine.dispose()
    assert [(key, bool(flag)) for key, flag in got] == [
        ("PABC123", False),
        ("PDEF456", False),
        ("PGHI789", False),
        ("PGHI789", True),  # Nov 20 as Billing, Nov 1 as Payments before it
        ("name:Checkout", False),
        ("name:Checkout", True),
        (None, False),
    ]


@pytest.mark.postgres
def test_two_transactions_adding_incidents_of_one_service_at_once_settle_each_others_flags() -> None:
    """PostgreSQL runs writers side by side: the later incident, written first, must still become a repeat
    of the earlier one written by a transaction that could not see it. The second transaction waits for
    the first to commit (a lock per service), then settles the first's incident too."""
    with fresh_postgres_database("pmb_repeat_race") as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            later = Session(engine)
            add_incident(later, at=d(20), service="Checkout", service_id="PABC123")  # flushed, not committed
            done = threading.Event()

            def write_the_earlier_one() -> None:
                with Session(engine) as earlier:
                    add_incident(earlier, at=d(18), service="Checkout", service_id="PABC123")
                    earlier.commit()
                done.set()

            writer = threading.Thread(target=write_the_earlier_one)
            writer.start()
            # Either the writer waits for the lock of the service (the fix), or it finished without seeing
            # the uncommitted later incident (the race): let it get that far before the first commits.
            with engine.connect() as watcher:
                for _ in range(500):
                    waiting = watcher.execute(
                        text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                    ).scalar_one()
                    if waiting or done.is_set():
                        break
                    time.sleep(0.01)
            later.commit()
            later.close()
            writer.join(timeout=30)
            with Session(engine) as session:
                assert stored_flags(session) == expected_flags(session)
                assert sorted(stored_flags(session).values()) == [False, True]
        finally:
            engine.dispose()
