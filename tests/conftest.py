"""Shared fixtures: migrated databases on SQLite and PostgreSQL.

PostgreSQL tests read the server URL from TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test);
each test session works in a database of its own, created and dropped here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from bot.core import models  # noqa: F401  (registers the tables)
from bot.core.db import make_engine, normalize_url, upgrade

POSTGRES_ENV = "TEST_POSTGRES_URL"
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own on the TEST_POSTGRES_URL server, dropped afterwards (the
    test is skipped when that variable is not set)."""
    server_url = os.environ.get(POSTGRES_ENV)
    if not server_url:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests need a server URL")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    with fresh_postgres_database("pmb_test") as url:
        upgrade(url)
        yield url


def _truncate_postgres(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A migrated, empty database: a SQLite file, or the session's PostgreSQL database truncated."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bot.core.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture(autouse=True)
def _no_background_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A started BotServer runs no scheduled jobs in tests: a digest or a reminder due at the wall-clock
    time of the run would land in the channels the scenarios assert on. Job tests pass a fixed `now`."""
    monkeypatch.setenv("SCHEDULER_ENABLED", "false")
    # The sandbox enforces no rate limits unless a test switches them on (and then sets this too).
    monkeypatch.setenv("OUTBOX_PACING", "false")
