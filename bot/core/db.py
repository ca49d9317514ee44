"""Engines, sessions and migrations. SQLite (WAL) by default, PostgreSQL through `DATABASE_URL`."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    Integer,
    create_engine,
    event,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.expression import Insert
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_SECONDS = 30
# Execution option of the connections `read_scope` hands out: on SQLite their transactions start with a
# deferred BEGIN outside the writer queue (WAL lets readers run beside the one writer).
READ_ONLY = "postmortem_bot_read_only"
# Execution option of a writer that requests are waiting on (the webhook group commit,
# bot/runtime/ingest.py): on SQLite it goes ahead of the other writers waiting in the queue (the delivery
# processor, the outbox).
AHEAD_OF_QUEUE = "postmortem_bot_ahead_of_queue"


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


CONNECT_TIMEOUT_SECONDS = 3


def make_engine(url: str) -> Engine:
    """Build an engine. On SQLite: WAL, a busy timeout, and writer transactions that start with
    BEGIN IMMEDIATE, so concurrent writers queue on the lock instead of failing with
    "database is locked" when a read transaction tries to upgrade to a write."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        # pre-ping: a connection the server dropped (a restart) is replaced, not handed out; connect_timeout:
        # an unreachable server fails a request in seconds (a 503), instead of hanging it.
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=20,
            max_overflow=10,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )

    database = make_url(url).database or ""
    on_disk = database not in ("", ":memory:")
    if on_disk:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # Keep a connection per server thread (16) plus the workers: past the pool size SQLAlchemy opens a
    # connection per checkout and closes it after, paying connect + PRAGMAs each time (seen under load).
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
        **({"pool_size": 20, "max_overflow": 10} if on_disk else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Runs just before the dialect's do_begin, which sees only the DBAPI connection: tell it whether
        # this transaction is a reader's (the pool record's info lives as long as the connection).
        options = connection.get_execution_options()
        connection.connection.info[READ_ONLY] = bool(options.get(READ_ONLY))
        connection.connection.info[AHEAD_OF_QUEUE] = bool(options.get(AHEAD_OF_QUEUE))

    _WriterQueue(engine.dialect)
    return engine


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode. The mode is stored in the file, so only its first connection has to
    change it; the others just check. A new connection reads the schema first, and that read can meet
    SQLITE_BUSY without the busy handler (CI saw "database is locked" here while the served bot was
    busy on the same file), so it is retried until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _WriterQueue:
    """SQLite lets one transaction write at a time. A transaction that finds the lock taken waits in
    SQLite's busy handler, which sleeps 1, 2, 5 ... up to 100 ms between tries and is not woken when the
    lock frees: with 16 server threads, `/postmortem` answered in 1.1 s at p99 (benchmarks, B1). So this
    process's transactions queue here, and the next one starts as soon as the last one ends; the busy
    timeout still covers other processes (the CLI). Transactions start with BEGIN IMMEDIATE, so a read
    that turns into a write never fails with "database is locked" half-way.

    Readers (`read_scope`) skip the queue: a deferred BEGIN takes no lock, and in WAL mode a reader sees
    the last committed snapshot while the writer works (B1: /postmortem read-only lookups queued behind
    every webhook's write). A transaction begun with AHEAD_OF_QUEUE goes before every other waiting
    writer: the webhook group commit answers many requests at once, and behind the delivery processor's
    back-to-back transactions it waited most of the time (B3)."""

    def __init__(self, dialect: Any) -> None:
        self._turn = threading.Condition()
        self._holder: object | None = None  # the DBAPI connection whose transaction holds the lock
        self._ahead_waiting = 0
        finish_commit, finish_rollback, close = dialect.do_commit, dialect.do_rollback, dialect.do_close
        dialect.do_begin = self._begin
        dialect.do_commit = lambda dbapi_connection: self._end(dbapi_connection, finish_commit)
        dialect.do_rollback = lambda dbapi_connection: self._end(dbapi_connection, finish_rollback)
        dialect.do_close = lambda dbapi_connection: self._end(dbapi_connection, close)

    def _begin(self, dbapi_connection: Any) -> None:
        info = getattr(dbapi_connection, "info", {})
        if info.get(READ_ONLY):
            dbapi_connection.execute("BEGIN")
            return
        ahead = bool(info.get(AHEAD_OF_QUEUE))
        with self._turn:
            self._ahead_waiting += ahead
            try:
                free = self._turn.wait_for(
                    lambda: self._holder is None and (ahead or not self._ahead_waiting),
                    timeout=BUSY_TIMEOUT_SECONDS,
                )
            finally:
                self._ahead_waiting -= ahead
            if not free:
                raise sqlite3.OperationalError(f"database is locked (waited {BUSY_TIMEOUT_SECONDS} s)")
            self._holder = _raw(dbapi_connection)
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release(dbapi_connection)
            raise

    def _end(self, dbapi_connection: Any, finish: Callable[[Any], None]) -> None:
        try:
            finish(dbapi_connection)
        finally:
            self._release(dbapi_connection)

    def _release(self, dbapi_connection: Any) -> None:
        with self._turn:
            if self._holder is _raw(dbapi_connection):
                self._holder = None
                self._turn.notify_all()


def _raw(connection: Any) -> Any:
    # SQLAlchemy hands the dialect the pool's proxy on begin/commit and the bare connection on close.
    return getattr(connection, "dbapi_connection", connection)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class ReadOnlySessionError(RuntimeError):
    """Something tried to write through `read_scope`."""


class _ReadSession(Session):
    def flush(self, objects: Any = None) -> None:
        if self.new or self.dirty or self.deleted:
            raise ReadOnlySessionError("read_scope is for lookups; write in session_scope")
        super().flush(objects)


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A read-only unit of work (lookups that change nothing). On SQLite it runs beside the writer, on a
    WAL snapshot, instead of queueing for the write lock; on PostgreSQL it is an ordinary transaction.
    Flushing a change raises ReadOnlySessionError. Objects stay loaded after the block, as with
    session_scope."""
    with _ReadSession(engine, expire_on_commit=False) as session:
        # The option must be set before the transaction begins: the `begin` listener reads it.
        session.connection(execution_options={READ_ONLY: True})
        yield session
        session.commit()


def insert_ignoring_duplicates(session: Session, model: type, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on both backends; True when a row was inserted.

    The idempotency primitive: the outbox, the delivery archive, job runs and announcements all rely on a
    unique key making the second insert of the same thing a no-op.
    """
    ignoring_duplicates: Insert
    if session.get_bind().dialect.name == "postgresql":
        ignoring_duplicates = pg_insert(model).values(**values).on_conflict_do_nothing()
    else:
        ignoring_duplicates = sqlite_insert(model).values(**values).on_conflict_do_nothing()
    statement = ignoring_duplicates.returning(literal_column("1", Integer))
    # Count the returned rows: with RETURNING, psycopg reports rowcount -1 when the conflict skipped
    # the insert, so `bool(rowcount)` would say True for a duplicate on PostgreSQL.
    return session.execute(statement).first() is not None


def rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed (a CursorResult's rowcount; the ORM's
    `execute` is typed as returning any Result)."""
    result = session.execute(statement)
    if not isinstance(result, CursorResult):
        raise TypeError(f"an UPDATE or DELETE returns a CursorResult, got {type(result).__name__}")
    return int(result.rowcount)


def serialize_on(session: Session | Connection, key: str) -> None:
    """Hold the lock named `key` until the transaction ends, so that a check-then-insert with no unique
    index to rely on runs one at a time, across replicas too. PostgreSQL: a transaction advisory lock.
    SQLite: nothing more to do, its write transactions already run one at a time (BEGIN IMMEDIATE)."""
    dialect = session.get_bind().dialect if isinstance(session, Session) else session.dialect
    if dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def schema_problem(url: str) -> str | None:
    """Why the database at `url` cannot be read by the bot as it is (None: it is at the newest revision).
    Looks without creating anything: a missing SQLite file stays missing."""
    normalized = normalize_url(url)
    database = make_url(normalized).database
    on_disk = normalized.startswith("sqlite") and database not in (None, "", ":memory:")
    if on_disk and not Path(str(database)).exists():
        return f"there is no database at {database}"
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(normalized)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    if current == head:
        return None
    return f"the database is at schema revision {current or '(none: never migrated)'}, this bot needs {head}"


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (the CLI's `db upgrade`, and every start-up)."""
    command.upgrade(alembic_config(url), revision)
