"""Migrations, on SQLite and PostgreSQL: from an empty database to exactly what bot/core/models.py
declares, and each revision applied over the previous schema with data in it (and back down and up again).

Generic over the chain: every revision after the first one that creates tables is checked the same way,
so a new migration is covered as soon as it is added."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, inspect
from sqlmodel import SQLModel

from bot.core import models  # noqa: F401  (registers the tables)
from bot.core.db import alembic_config, make_engine, upgrade
from tests.conftest import fresh_postgres_database

SAMPLE_INSTANT = datetime(2026, 11, 23, 14, 0)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database with nothing in it, not even Alembic's version table."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_postgres_database("pmb_migrations") as url:
        yield url


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def revisions_in_order(url: str) -> list[str]:
    """base -> head, one linear chain."""
    script = ScriptDirectory.from_config(alembic_config(url))
    assert len(script.get_heads()) == 1, "the migrations must form one chain (alembic heads is one)"
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_upgrade_from_empty_gives_exactly_the_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        assert schema_differences(engine) == []
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set(SQLModel.metadata.tables)
    finally:
        engine.dispose()


def sample_value(column: Any, row: int) -> Any:
    """A representative value for a reflected column (foreign keys point at row 1 of their table)."""
    if column.foreign_keys:
        return 1
    kind = column.type
    if getattr(kind, "enums", None):
        return kind.enums[0]
    try:
        python_type = kind.python_type
    except NotImplementedError:
        python_type = str
    if python_type is bytes:
        return b"sample bytes"
    if python_type is bool:
        return True
    if python_type is int:
        return row
    if python_type is float:
        return 1.5
    if python_type is datetime:
        return SAMPLE_INSTANT
    if python_type is date:
        return SAMPLE_INSTANT.date()
    if python_type in (dict, list):
        return {"sample": "value"} if python_type is dict else ["sample"]
    length = getattr(kind, "length", None) or 40
    return f"s{row}-{column.name}"[:length]


def insert_sample_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """One row in every table of the schema as it is now (reflected, not from the models: an older
    revision's tables may differ), in dependency order."""
    metadata = MetaData()
    metadata.reflect(engine)
    inserted: dict[str, dict[str, Any]] = {}
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            row = {c.name: sample_value(c, 1) for c in table.columns}
            connection.execute(table.insert().values(**row))
            inserted[table.name] = row
    return inserted


def rows_now(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            t.name: [dict(r._mapping) for r in connection.execute(t.select())]
            for t in metadata.sorted_tables
            if t.name != "alembic_version"
        }


def assert_rows_kept(inserted: dict[str, dict[str, Any]], now: dict[str, list[dict[str, Any]]]) -> None:
    for table, row in inserted.items():
        assert table in now, f"{table} disappeared"
        assert len(now[table]) == 1, f"{table}: {len(now[table])} rows"
        kept = now[table][0]
        for name, value in row.items():
            if name in kept and not isinstance(value, datetime | date | dict | list | bytes):
                assert kept[name] == value, f"{table}.{name}: {kept[name]!r} != {value!r}"


def test_each_revision_applies_over_the_previous_schema_with_data(empty_database_url: str) -> None:
    url = empty_database_url
    chain = revisions_in_order(url)
    config = alembic_config(url)
    checked = 0
    inserted: dict[str, dict[str, Any]] | None = None
    for previous, revision in itertools.pairwise(chain):
        command.upgrade(config, previous)
        engine = make_engine(url)
        try:
            if not set(inspect(engine).get_table_names()) - {"alembic_version"}:
                checked += 1
                continue  # nothing to keep yet: data goes in at the first revision with tables
            if inserted is None:
                inserted = insert_sample_rows(engine)
            command.upgrade(config, revision)
            assert_rows_kept(inserted, rows_now(engine))
            command.downgrade(config, previous)
            command.upgrade(config, revision)
            assert_rows_kept(inserted, rows_now(engine))
            checked += 1
        finally:
            engine.dispose()
    assert checked == len(chain) - 1, f"checked {checked} of {len(chain) - 1} upgrades"
    engine = make_engine(url)
    try:
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
