"""The group-commit writer (bot/runtime/ingest.py) on SQLite and PostgreSQL: deliveries that arrive
together are committed together, each stored once, and a copy is answered as a duplicate only once the
original is durable."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.models import InboundDelivery
from bot.domain.deliveries import RawDelivery, store_deliveries
from bot.runtime.ingest import IngestWriter, NotStored
from tests.conftest import NOW
from tests.processing import wait_for


def delivery(n: int) -> RawDelivery:
    return RawDelivery("pagerduty", f"EV{n:04d}", "incident.triggered", f'{{"event": {{"id": "EV{n:04d}"}}}}')


def stored_ids(engine: Engine) -> Counter[str]:
    with Session(engine) as session:
        return Counter(session.exec(select(InboundDelivery.delivery_id)).all())


class CountingWriter(IngestWriter):
    """Records the size of each batch it commits; while `gate` is clear, a commit waits for it."""

    def __init__(self, engine: Engine, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(engine=engine, **kwargs)
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def _commit(self, batch) -> None:  # type: ignore[no-untyped-def]
        self.batches.append(len(batch))
        self.gate.wait(10)
        super()._commit(batch)


def test_many_concurrent_deliveries_are_each_stored_once(engine: Engine) -> None:
    woken = threading.Event()
    writer = CountingWriter(engine, on_stored=woken.set).start()
    try:
        # 200 deliveries, each sent twice at once (PagerDuty's retry racing the original).
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda n: (n % 200, writer.store(delivery(n % 200))), range(400)))
    finally:
        writer.stop()
    new = Counter(n for n, is_new in answers if is_new)
    assert new == Counter(range(200))  # exactly one of the two copies is the new one
    assert stored_ids(engine) == Counter(f"EV{n:04d}" for n in range(200))
    assert woken.is_set()
    assert sum(writer.batches) == 400 and max(writer.batches) > 1, writer.batches  # grouped
    with Session(engine) as session:
        rows = session.exec(select(InboundDelivery)).all()
    assert {(r.processed_at, r.attempts, r.next_attempt_at) for r in rows} == {(None, 0, None)}


def test_copies_in_one_batch_answer_duplicate_after_the_original_is_committed(engine: Engine) -> None:
    writer = CountingWriter(engine).start()
    writer.gate.clear()
    answers: dict[int, bool] = {}

    def send(n: int, raw: RawDelivery) -> None:
        answers[n] = writer.store(raw)

    first = threading.Thread(target=send, args=(0, delivery(0)))
    first.start()
    wait_for(lambda: writer.batches == [1], message="the first batch did not start")
    # While the first batch commits, three copies of one delivery and two others arrive: the next batch.
    senders = [threading.Thread(target=send, args=(n, delivery(1 if n < 4 else n))) for n in range(1, 6)]
    for sender in senders:
        sender.start()
    wait_for(lambda: writer.pending == 5, message="the five deliveries were not handed over")
    assert answers == {}  # nothing is answered before its batch is committed
    writer.gate.set()
    for sender in [first, *senders]:
        sender.join(10)
    writer.stop()
    assert writer.batches == [1, 5]
    assert sorted(answers[n] for n in (1, 2, 3)) == [False, False, True]  # one original, two copies
    assert answers[0] is answers[4] is answers[5] is True
    assert stored_ids(engine) == Counter({"EV0000": 1, "EV0001": 1, "EV0004": 1, "EV0005": 1})


def test_a_delivery_stored_before_is_a_duplicate(engine: Engine) -> None:
    writer = IngestWriter(engine=engine).start()
    try:
        assert writer.store(delivery(7)) is True
        assert writer.store(delivery(7)) is False
    finally:
        writer.stop()


def test_a_failed_commit_answers_not_stored_to_every_delivery_of_the_batch(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr("bot.runtime.ingest.store_deliveries", broken)
    writer = IngestWriter(engine=engine).start()
    try:
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda n: _store_or_error(writer, delivery(n)), range(4)))
    finally:
        writer.stop()
    assert outcomes == ["RuntimeError: disk full"] * 4
    assert stored_ids(engine) == Counter()


def test_a_stopped_writer_refuses_instead_of_hanging(engine: Engine) -> None:
    writer = IngestWriter(engine=engine).start()
    writer.stop()
    with pytest.raises(NotStored, match="not running"):
        writer.store(delivery(1))


def _store_or_error(writer: IngestWriter, raw: RawDelivery) -> str | bool:
    try:
        return writer.store(raw)
    except NotStored as exc:
        return str(exc)


def test_a_batch_is_stored_exactly_as_the_orm_stores_a_row(engine: Engine) -> None:
    """The batch INSERT bypasses the ORM: its values must read back, and compare in SQL, like the ORM's
    (on SQLite an instant is text, so its format matters)."""
    with engine.begin() as connection:
        new = store_deliveries(connection, [delivery(1), RawDelivery("pagerduty", "EV2", None, "{}")], at=NOW)
    assert new == {("pagerduty", "EV0001"), ("pagerduty", "EV2")}
    with Session(engine) as session:
        found = session.exec(select(InboundDelivery).where(InboundDelivery.received_at == NOW)).all()
    assert {(row.delivery_id, row.event_type, row.received_at, row.attempts) for row in found} == {
        ("EV0001", "incident.triggered", NOW, 0),
        ("EV2", None, NOW, 0),
    }


def test_the_writer_says_when_it_is_idle(engine: Engine) -> None:
    writer = CountingWriter(engine).start()
    try:
        assert writer.wait_until_idle(0)
        writer.gate.clear()
        sender = threading.Thread(target=writer.store, args=(delivery(1),))
        sender.start()
        wait_for(lambda: writer.batches == [1], message="the batch did not start")
        assert not writer.wait_until_idle(0.05)  # committing
        writer.gate.set()
        assert writer.wait_until_idle(10)
        sender.join(10)
    finally:
        writer.stop()
