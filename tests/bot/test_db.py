"""SQLite's writer queue (bot.core.db): one transaction at a time per process, never left locked."""

from __future__ import annotations

import threading
from functools import partial

import pytest
from sqlalchemy import text
from sqlmodel import select

from bot.core.db import AHEAD_OF_QUEUE, ReadOnlySessionError, make_engine, read_scope, session_scope
from bot.core.models import Incident
from bot.domain.incidents import IncidentError, declare_incident
from tests.conftest import NOW


@pytest.fixture
def sqlite_engine(tmp_path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.core.db'}")
    with session_scope(engine) as session:
        session.execute(text("CREATE TABLE probe (name TEXT NOT NULL)"))
    yield engine
    engine.dispose()


def _count(engine) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.execute(text("SELECT count(*) FROM probe")).scalar_one()


def _insert(session, name: str) -> None:  # type: ignore[no-untyped-def]
    session.execute(text("INSERT INTO probe (name) VALUES (:name)"), {"name": name})


def test_a_second_writer_waits_for_the_first_to_commit(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    first_wrote, second_done = threading.Event(), threading.Event()
    seen_by_second: list[int] = []

    def second() -> None:
        first_wrote.wait()
        seen_by_second.append(_count(sqlite_engine))
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with session_scope(sqlite_engine) as session:
        _insert(session, "first")
        first_wrote.set()
        assert not second_done.wait(0.3), "the second transaction ran while the first was open"
    thread.join(10)
    assert seen_by_second == [1]


def test_a_writer_begun_ahead_of_the_queue_goes_before_the_writers_already_waiting(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """The webhook group commit (requests wait on it) is not kept waiting behind the delivery processor's
    and the outbox's transactions."""
    ahead = sqlite_engine.execution_options(**{AHEAD_OF_QUEUE: True})
    order: list[str] = []
    done = {name: threading.Event() for name in ("queued", "ahead")}

    def write(engine, name: str) -> None:  # type: ignore[no-untyped-def]
        with session_scope(engine) as session:
            _insert(session, name)
            order.append(name)
        done[name].set()

    with session_scope(sqlite_engine) as session:
        _insert(session, "holder")
        order.append("holder")
        threading.Thread(target=write, args=(sqlite_engine, "queued")).start()
        assert not done["queued"].wait(0.3), "the queued writer ran while the holder was open"
        threading.Thread(target=write, args=(ahead, "ahead")).start()
        assert not done["ahead"].wait(0.3), "the writer ahead of the queue ran while the holder was open"
    assert done["queued"].wait(10) and done["ahead"].wait(10)
    assert order == ["holder", "ahead", "queued"]


def test_a_failed_transaction_releases_the_queue(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), session_scope(sqlite_engine) as session:
        _insert(session, "rolled back")
        raise RuntimeError("listener failed")
    with session_scope(sqlite_engine) as session:  # would wait 30 s and fail if the queue leaked
        _insert(session, "after")
    assert _count(sqlite_engine) == 1


def test_an_invalidated_connection_releases_the_queue(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(sqlite_engine) as session:
        _insert(session, "kept")
    connection = sqlite_engine.connect()
    connection.begin()
    connection.invalidate()
    connection.close()
    with session_scope(sqlite_engine) as session:
        _insert(session, "after")
    assert _count(sqlite_engine) == 2


def test_a_reader_runs_while_a_writer_holds_the_queue(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """read_scope takes a deferred BEGIN outside the queue: it sees the last committed state at once,
    not after the writer commits (WAL lets readers run beside the one writer)."""
    with session_scope(sqlite_engine) as session:
        _insert(session, "committed")
    read: list[int] = []

    def reader() -> None:
        with read_scope(sqlite_engine) as session:
            read.append(session.execute(text("SELECT count(*) FROM probe")).scalar_one())

    with session_scope(sqlite_engine) as session:
        _insert(session, "uncommitted")
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(5)
        # Still inside the writer's transaction: a reader that queued would not have finished yet.
        assert not thread.is_alive()
        assert read == [1]
    assert _count(sqlite_engine) == 2


def test_a_writer_is_not_held_up_by_an_open_reader(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with read_scope(sqlite_engine) as reading:
        assert reading.execute(text("SELECT count(*) FROM probe")).scalar_one() == 0
        with session_scope(sqlite_engine) as session:
            _insert(session, "written beside a reader")
        # The reader keeps its snapshot until it ends.
        assert reading.execute(text("SELECT count(*) FROM probe")).scalar_one() == 0
    assert _count(sqlite_engine) == 1


def test_read_scope_refuses_to_flush_changes(engine) -> None:  # type: ignore[no-untyped-def]
    """On both databases: a lookup session cannot write an ORM change by accident."""
    from bot.core.clock import utcnow
    from bot.core.models import Incident

    with pytest.raises(ReadOnlySessionError), read_scope(engine) as session:
        now = utcnow()
        session.add(Incident(title="not stored", triggered_at=now, created_at=now, updated_at=now))
        session.flush()
    with read_scope(engine) as session:
        assert session.execute(text("SELECT count(*) FROM incidents")).scalar_one() == 0


def test_two_declarations_in_one_channel_at_once_make_one_incident(engine) -> None:  # type: ignore[no-untyped-def]
    """Two replicas run `/postmortem new` in the same channel at the same moment: the second waits for the
    first to commit, then sees its incident (no unique index can say "one incident per channel")."""
    declare = partial(
        declare_incident,
        title="Checkout down",
        channel_id="C0INC",
        channel_name="inc-checkout",
        channel_is_private=False,
        declared_by="U0ALICE",
        at=NOW,
    )
    outcome: list[object] = []

    def second() -> None:
        try:
            with session_scope(engine) as session:
                declare(session=session)
                outcome.append("declared")
        except IncidentError as error:
            outcome.append(error)

    with session_scope(engine) as session:
        declare(session=session)
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=1)
        assert racer.is_alive(), "the second declaration did not wait for the first transaction"
    racer.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], IncidentError)
    with read_scope(engine) as session:
        assert len(session.exec(select(Incident)).all()) == 1
