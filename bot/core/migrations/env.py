"""Alembic environment: migrations run against the URL that `bot.core.db.upgrade` configures."""

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

from bot.core import models  # noqa: F401  (registers every table on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: sqlalchemy.url is not set (bot.core.db.upgrade sets it)")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # batch mode lets ALTER TABLE work on SQLite by rebuilding the table.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
