"""Helpers for a row of any table (bot/core/models.py): its id once stored, its Table."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Table
from sqlmodel import SQLModel


class _Row(Protocol):
    @property
    def id(self) -> int | None: ...


def id_of(row: _Row) -> int:
    """The primary key of a stored row. A row gets its id when the session flushes it; asking for the id
    of a row that was never flushed is a programming error, not a missing value."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: add it to the session and flush first")
    return row.id


def table_of(model: type[SQLModel]) -> Table:
    """The Table of a table model (what SQLModel sets as `model.__table__`, which its typing does not
    declare), looked up on the shared metadata by the model's table name."""
    name = model.__tablename__
    if not isinstance(name, str):
        raise TypeError(f"{model.__name__} has no fixed table name")
    return model.metadata.tables[name]
