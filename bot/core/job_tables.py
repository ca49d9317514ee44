"""The scheduler's tables: who holds the lease, and which scheduled runs happened
(docs/architecture.md, "Scheduled jobs"). Registered on SQLModel.metadata through bot.core.models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class SchedulerLease(SQLModel, table=True):
    """Exactly one replica runs scheduled jobs: the one holding this row's unexpired lease."""

    __tablename__ = "scheduler_leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime


class JobRun(SQLModel, table=True):
    """One run of a scheduled job for one scheduled instant: nothing runs twice, missed runs are caught up."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "scheduled_for"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=64)
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime | None = None
    holder: str = Field(max_length=128)
