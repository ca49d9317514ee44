"""The delivery processor (bot/runtime/processor.py) on SQLite and PostgreSQL: stored deliveries are processed
oldest first, once, even by two processors at once; one whose processing raises keeps its row, waits its
back-off and blocks nothing; a note that arrives before its incident waits for it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from bot.core.config import load_settings
from bot.core.db import session_scope
from bot.core.models import InboundDelivery, Incident, TimelineEntry
from bot.domain.deliveries import FAILING_AFTER_ATTEMPTS, archive_delivery, backlog
from bot.domain.pagerduty import SOURCE, Outcome
from bot.domain.pagerduty_lifecycle import NOTE_WAIT
from bot.flows import incident_events
from bot.runtime.processor import DeliveryProcessor
from bot.runtime.server import build_process, create_wsgi_app
from tests.bot.test_outbox import call_wsgi
from tests.conftest import NOW
from tests.faults.ledger import pagerduty_body
from tests.shared_fixtures import pagerduty_file

SETTINGS = load_settings(incident_channel_prefix="inc-")


def store(engine: Engine, *bodies: bytes) -> None:
    with session_scope(engine) as session:
        for body in bodies:
            event = json.loads(body)["event"]
            assert archive_delivery(
                session,
                source=SOURCE,
                delivery_id=event["id"],
                event_type=event["event_type"],
                body=body.decode(),
                at=NOW,
            )


def rows(engine: Engine) -> dict[str, InboundDelivery]:
    with Session(engine) as session:
        return {row.delivery_id: row for row in session.exec(select(InboundDelivery))}


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def processor(engine: Engine, **kwargs) -> DeliveryProcessor:  # type: ignore[no-untyped-def]
    return DeliveryProcessor(engine=engine, settings=SETTINGS, **kwargs)


def test_a_failing_delivery_is_retried_with_back_off_and_blocks_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken, fine = (pagerduty_body(f"QPROC{n}", 600 + n, "triggered", minutes=0) for n in (1, 2))
    store(engine, broken, fine)
    real = incident_events.apply_event

    def apply_event(**kwargs):  # type: ignore[no-untyped-def]
        if kwargs["event"].id == "EVQPROC1triggered":
            raise RuntimeError("processing broke")
        return real(**kwargs)

    monkeypatch.setattr("bot.flows.incident_events.apply_event", apply_event)
    woken: list[bool] = []
    worker = processor(engine, on_processed=lambda: woken.append(True))
    assert worker.run_once(NOW) == 2  # the failure, then the delivery after it
    assert worker.run_once(NOW) == 0  # the failure waits for its back-off: no hot loop
    failed, done = rows(engine)["EVQPROC1triggered"], rows(engine)["EVQPROC2triggered"]
    assert (failed.processed_at, failed.attempts, failed.error) == (None, 1, "RuntimeError: processing broke")
    assert failed.next_attempt_at == NOW + timedelta(seconds=2)
    assert done.processed_at == NOW and woken == [True]
    assert count(engine, Incident) == 1  # the failure's savepoint rolled back, the other committed

    assert worker.run_once(NOW + timedelta(seconds=2)) == 1  # due again: fails again, waits longer
    assert rows(engine)["EVQPROC1triggered"].next_attempt_at == NOW + timedelta(seconds=6)
    monkeypatch.undo()
    assert worker.run_once(NOW + timedelta(seconds=5)) == 0
    assert worker.process_next(NOW + timedelta(seconds=6)) == Outcome.PROCESSED
    fixed = rows(engine)["EVQPROC1triggered"]
    assert (fixed.processed_at, fixed.error) == (NOW + timedelta(seconds=6), None)
    assert count(engine, Incident) == 2
    assert worker.run_once(NOW + timedelta(hours=1)) == 0  # processed once, never again


def test_the_back_off_stops_growing_at_its_longest(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    store(engine, pagerduty_body("QPROC9", 609, "triggered", minutes=0))

    def broken(**_: object) -> Outcome:
        raise RuntimeError("still broken")

    monkeypatch.setattr("bot.flows.incident_events.apply_event", broken)
    worker = processor(engine, max_backoff=5)
    at = NOW
    for _ in range(4):
        assert worker.run_once(at) == 1
        at = rows(engine)["EVQPROC9triggered"].next_attempt_at
    assert at - NOW == timedelta(seconds=2 + 4 + 5 + 5)


def test_a_delivery_that_keeps_failing_makes_healthz_degraded(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(engine, pagerduty_body("QPROC8", 608, "triggered", minutes=0))

    def broken(**_: object) -> Outcome:
        raise RuntimeError("still broken")

    monkeypatch.setattr("bot.flows.incident_events.apply_event", broken)
    worker = processor(engine, max_backoff=1)
    process = build_process(load_settings(database_url=database_url, slack_bot_token="xoxb-test"))
    health = create_wsgi_app(process, None)
    at = NOW
    for attempt in range(1, FAILING_AFTER_ATTEMPTS + 1):
        assert json.loads(call_wsgi(health, "GET", "/healthz")[1])["status"] == "ok", attempt
        assert worker.run_once(at) == 1
        at += timedelta(seconds=1)
    status, body = call_wsgi(health, "GET", "/healthz")
    process.runtime.engine.dispose()
    assert status == 200 and '"status": "degraded"' in body
    assert '"unprocessed": 1, "retrying": 1, "failing": 1' in body


def test_a_note_before_its_incident_waits_and_is_looked_at_again_later(engine: Engine) -> None:
    store(engine, pagerduty_file("incident.annotated.json"))
    worker = processor(engine)
    assert worker.process_next(NOW) == Outcome.WAITING
    [note] = rows(engine).values()
    assert (note.processed_at, note.error) == (
        None,
        "waiting for incident Q2CKYRLH85UNN4 of aldaviva.pagerduty.com",
    )
    assert note.attempts == 0 and note.next_attempt_at == NOW + timedelta(seconds=1)  # not a failure
    assert worker.process_next(NOW) is None
    # Looked at again later, still no incident: the wait grows with the note's age.
    later = NOW + timedelta(minutes=2)
    assert worker.process_next(later) == Outcome.WAITING
    assert rows(engine)[note.delivery_id].next_attempt_at == later + timedelta(minutes=2)
    # The incident arrives: processing it replays the note at once.
    store(engine, pagerduty_file("incident.triggered.json"))
    assert worker.run_once(later) == 1
    assert {row.processed_at for row in rows(engine).values()} == {later}
    assert count(engine, TimelineEntry) == 2


def test_a_note_whose_incident_never_comes_is_given_up_after_the_bound_and_health_stays_ok(
    engine: Engine,
) -> None:
    store(engine, pagerduty_file("incident.annotated.json"))
    worker = processor(engine)
    at, outcome = NOW, None
    for _ in range(1000):  # 48 h of looks at most 5 minutes apart, and a bound if that changed
        outcome = worker.process_next(at)
        assert outcome in (Outcome.WAITING, Outcome.ABANDONED)
        [note] = rows(engine).values()
        # Never looked at after the bound: the last look is at it, not a growing wait past it.
        assert note.next_attempt_at is None or note.next_attempt_at <= note.received_at + NOTE_WAIT
        at = note.next_attempt_at or at
        if outcome == Outcome.ABANDONED:
            break
    [note] = rows(engine).values()
    assert outcome == Outcome.ABANDONED and at == note.received_at + NOTE_WAIT
    assert note.processed_at == at
    assert note.error == "incident Q2CKYRLH85UNN4 of aldaviva.pagerduty.com never arrived within 48 h"
    with Session(engine) as session:
        assert backlog(session, source=SOURCE) == {"unprocessed": 0, "retrying": 0, "failing": 0}


def test_two_processors_at_once_process_each_delivery_once(engine: Engine) -> None:
    """Replicas on one database: SKIP LOCKED on PostgreSQL, the writer lock on SQLite."""
    bodies = [
        pagerduty_body(f"QPAIR{n:03d}", 800 + n, kind, minutes=minutes)
        for n in range(15)
        for kind, minutes in (("triggered", 0), ("acknowledged", 2), ("resolved", 9))
    ]
    store(engine, *bodies)
    workers = [processor(engine), processor(engine)]
    with ThreadPoolExecutor(2) as pool:
        attempted = list(pool.map(lambda worker: worker.run_once(NOW), workers))
    assert sum(attempted) == len(bodies)
    assert count(engine, Incident) == 15
    assert count(engine, TimelineEntry) == len(bodies)
    assert {row.processed_at for row in rows(engine).values()} == {NOW}
    with Session(engine) as session:
        resolved = session.exec(select(Incident.status)).all()
    assert set(resolved) == {"resolved"}


def test_storing_comes_first_but_processing_never_stops(engine: Engine) -> None:
    """After each delivery the processor gives the ingest writer up to nine times what the delivery took
    to become idle; a writer that never does (a storm) slows processing but does not stop it."""
    store(engine, *(pagerduty_body(f"QBUSY{n}", 900 + n, "triggered", minutes=0) for n in range(3)))
    waits: list[float] = []
    worker = processor(engine, yield_to=waits.append)
    assert worker.run_once(NOW) == 3
    assert len(waits) == 3 and all(wait > 0 for wait in waits)
    assert count(engine, Incident) == 3
