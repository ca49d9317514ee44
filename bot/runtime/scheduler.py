"""Scheduled jobs: a few fixed sweeps over database state, run by exactly one replica.

Rules (docs/architecture.md, "Scheduled jobs"):
- APScheduler 3's BackgroundScheduler with an explicit timezone (TIMEZONE), a memory job store, fixed job
  ids, coalescing and a misfire grace that fits each job. No job per incident and no pickled arguments:
  a job is a sweep that reads what is due from the tables.
- The `job_runs` table is the record. A run inserts (job_id, scheduled_for) before it acts, in the same
  transaction as its effects, so a scheduled instant runs at most once across restarts and replicas; a
  run missed while the bot was down is caught up once at start-up (or at take-over), within the job's
  grace; one older than that is dropped with a log line (a reminder after the retro helps nobody). The
  weekly digest's grace is a week: however long the bot was down, the digest of the latest week it missed
  is posted when it returns, saying it is late.
- Leadership is a lease row in `scheduler_leases`: the holder renews it every 15 s and it expires after
  45 s. Taking it is one atomic UPDATE ... WHERE expires_at < now OR holder = me, so when the leader
  dies another replica takes over within a minute.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job as ScheduledJob
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, func, select

from bot.core.clock import utcnow
from bot.core.config import QuarterlySchedule, Settings, WeeklySchedule
from bot.core.db import insert_ignoring_duplicates, read_scope, rows_changed, session_scope
from bot.core.models import JobRun, SchedulerLease
from bot.loop import digest, docs_sync, reminders, runbooks, wins

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
LEASE_SECONDS = 45
RENEW_SECONDS = 15
SWEEP_MINUTES = 15


class Schedule(Protocol):
    def previous(self, now: datetime) -> datetime:
        """The latest scheduled instant at or before `now`."""

    def trigger(self) -> CronTrigger: ...


@dataclass(frozen=True)
class Weekly:
    """A RETRO_SCHEDULE / DIGEST_SCHEDULE: days and a local time in TIMEZONE."""

    schedule: WeeklySchedule
    settings: Settings

    def previous(self, now: datetime) -> datetime:
        return self.schedule.previous(now, self.settings.tz)

    def trigger(self) -> CronTrigger:
        return CronTrigger(
            day_of_week=self.schedule.cron_days,
            hour=self.schedule.hour,
            minute=self.schedule.minute,
            timezone=self.settings.tz,
        )


@dataclass(frozen=True)
class Quarterly:
    """RUNBOOK_CHECK_SCHEDULE's "quarterly mon 10:00": the first Monday of each quarter
    (bot/core/schedules.py)."""

    schedule: QuarterlySchedule
    settings: Settings

    def previous(self, now: datetime) -> datetime:
        return self.schedule.previous(now, self.settings.tz)

    def trigger(self) -> CronTrigger:
        # APScheduler matches every field given (day and day_of_week both), unlike cron's either-or.
        return CronTrigger(
            month="1,4,7,10",
            day="1-7",
            day_of_week=self.schedule.cron_days,
            hour=self.schedule.hour,
            minute=self.schedule.minute,
            timezone=self.settings.tz,
        )


@dataclass(frozen=True)
class Every:
    """A sweep every `minutes` minutes, on the clock (:00, :15, ...)."""

    minutes: int
    settings: Settings

    def previous(self, now: datetime) -> datetime:
        step = self.minutes * 60
        return datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, tz=now.tzinfo)

    def trigger(self) -> CronTrigger:
        return CronTrigger(minute=f"*/{self.minutes}", timezone=self.settings.tz)


# What a job does: act on the database (enqueue into the outbox) for the run scheduled at `scheduled_for`.
# Its return value (a count, the keys announced...) is for the tests; the runner ignores it.
class JobAction(Protocol):
    def __call__(
        self, *, session: Session, settings: Settings, now: datetime, scheduled_for: datetime
    ) -> object: ...


@dataclass(frozen=True)
class Job:
    id: str
    schedule: Schedule
    # How late a run may still happen (at start-up after downtime, or when the process was busy).
    grace: timedelta
    action: JobAction
    # It posts in public channels: the channels' privacy is asked of Slack first (`before_public`).
    public: bool = False


def build_jobs(settings: Settings) -> list[Job]:
    """The fixed set of jobs (the docs sync only with DOCS_REPO set)."""
    jobs = [
        # A retro reminder hours after the retro helps nobody.
        Job(
            "retro_reminder",
            Weekly(settings.retro, settings),
            reminders.RETRO_FRESH,
            reminders.send_retro_reminder,
            public=True,
        ),
        # A digest is the record of its week: however late, the latest one missed is posted (saying so).
        Job(
            "weekly_digest",
            Weekly(settings.digest, settings),
            timedelta(days=7),
            digest.send_digest,
            public=True,
        ),
        # Sweeps: the next run covers a missed one, so a run older than one interval is skipped.
        Job(
            "nudges", Every(SWEEP_MINUTES, settings), timedelta(minutes=SWEEP_MINUTES), reminders.send_nudges
        ),
        Job(
            "wins_and_alerts",
            Every(SWEEP_MINUTES, settings),
            timedelta(minutes=SWEEP_MINUTES),
            wins.announce,
            public=True,
        ),
    ]
    if settings.docs_repo:
        # The pull request shows everything published so far: a night missed is caught up within a day.
        jobs.append(
            Job("docs_sync", Weekly(settings.docs, settings), timedelta(days=1), docs_sync.docs_sync_job)
        )
    if settings.docs_repo and settings.runbooks:
        check = settings.runbook_check
        schedule = (
            Quarterly(check, settings) if isinstance(check, QuarterlySchedule) else Weekly(check, settings)
        )
        # A quarterly report missed while the bot was down is still worth posting within the week.
        jobs.append(Job("runbook_check", schedule, timedelta(days=7), runbooks.runbook_check_job))
    return jobs


class JobRunner:
    """The database side of scheduling, with an explicit `now` everywhere (what the tests call)."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        jobs: list[Job],
        holder: str | None = None,
        before_public: Callable[[datetime], object] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.jobs = {job.id: job for job in jobs}
        self.holder = holder or f"scheduler-{uuid.uuid4().hex[:10]}"
        # Asks Slack whether the incident channels are still public before a public job runs
        # (bot/flows/channel_life.py::refresh_privacy): a conversion whose event was missed is caught.
        self.before_public = before_public

    # --- the lease ---------------------------------------------------------------------------------

    def acquire_lease(self, now: datetime) -> bool:
        """Take or renew the lease; True when this replica is the leader until now + 45 s."""
        expires = now + timedelta(seconds=LEASE_SECONDS)
        with session_scope(self.engine) as session:
            renewed = rows_changed(
                session,
                update(SchedulerLease)
                .where(col(SchedulerLease.name) == LEASE_NAME)
                .where(or_(col(SchedulerLease.expires_at) < now, col(SchedulerLease.holder) == self.holder))
                .values(holder=self.holder, expires_at=expires),
            )
            if renewed:
                return True
            return insert_ignoring_duplicates(
                session, SchedulerLease, {"name": LEASE_NAME, "holder": self.holder, "expires_at": expires}
            )

    def release_lease(self, now: datetime) -> None:
        """On a clean stop: let another replica take over at once instead of after the expiry."""
        with session_scope(self.engine) as session:
            session.execute(
                update(SchedulerLease)
                .where(col(SchedulerLease.name) == LEASE_NAME, col(SchedulerLease.holder) == self.holder)
                .values(expires_at=now)
            )

    # --- runs --------------------------------------------------------------------------------------

    def run_due(self, job_id: str, now: datetime) -> datetime | None:
        """Run `job_id` for its latest scheduled instant, unless that instant ran already or is older than
        the job's grace. Returns the instant that ran, or None."""
        job = self.jobs[job_id]
        scheduled_for = job.schedule.previous(now)
        if now - scheduled_for > job.grace:
            self._log_if_dropped(job_id, scheduled_for, now)
            return None
        if job.public and self.before_public is not None and not self._ran(job_id, scheduled_for):
            self.before_public(now)
        with session_scope(self.engine) as session:
            # The claim comes first and commits with the job's effects: a second runner (another replica,
            # or this one after a restart) finds the row and does nothing; a failed run leaves no row.
            claimed = insert_ignoring_duplicates(
                session,
                JobRun,
                {"job_id": job_id, "scheduled_for": scheduled_for, "started_at": now, "holder": self.holder},
            )
            if not claimed:
                return None
            job.action(session=session, settings=self.settings, now=now, scheduled_for=scheduled_for)
            session.execute(
                update(JobRun)
                .where(col(JobRun.job_id) == job_id, col(JobRun.scheduled_for) == scheduled_for)
                .values(finished_at=utcnow())
            )
        log.info("job %s ran for %s", job_id, scheduled_for.isoformat())
        return scheduled_for

    def _ran(self, job_id: str, scheduled_for: datetime) -> bool:
        with read_scope(self.engine) as session:
            statement = select(JobRun.job_id).where(
                JobRun.job_id == job_id, JobRun.scheduled_for == scheduled_for
            )
            return session.exec(statement).first() is not None

    def _log_if_dropped(self, job_id: str, scheduled_for: datetime, now: datetime) -> None:
        """A run missed while the bot was down is dropped with a log line (not on a first start)."""
        with read_scope(self.engine) as session:
            last = session.exec(select(func.max(JobRun.scheduled_for)).where(JobRun.job_id == job_id)).one()
        if last is not None and last < scheduled_for:
            log.warning(
                "job %s missed its run at %s by %s (the bot was down): dropped as stale",
                job_id,
                scheduled_for.isoformat(),
                now - scheduled_for,
            )

    def catch_up(self, now: datetime) -> list[str]:
        """Run every job whose latest instant has not run yet (start-up, take-over)."""
        return [job_id for job_id in self.jobs if self.run_due(job_id, now) is not None]


def runs_of(session: Session, job_id: str) -> list[datetime]:
    statement = (
        select(JobRun.scheduled_for).where(JobRun.job_id == job_id).order_by(col(JobRun.scheduled_for))
    )
    return list(session.exec(statement))


class Scheduler:
    """The APScheduler wrapper a BotServer starts: fires the jobs on time and renews the lease."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        jobs: list[Job] | None = None,
        before_public: Callable[[datetime], object] | None = None,
    ) -> None:
        self.runner = JobRunner(
            engine=engine,
            settings=settings,
            jobs=jobs if jobs is not None else build_jobs(settings),
            before_public=before_public,
        )
        self._leader = False
        self._lock = threading.Lock()
        self._aps: BackgroundScheduler | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    def start(self) -> Scheduler:
        aps = BackgroundScheduler(
            timezone=self.runner.settings.tz,
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        aps.add_job(
            self.renew_lease,
            IntervalTrigger(seconds=RENEW_SECONDS, timezone=self.runner.settings.tz),
            id="scheduler_lease",
            misfire_grace_time=RENEW_SECONDS,
            coalesce=True,
            replace_existing=True,
        )
        for job in self.runner.jobs.values():
            aps.add_job(
                self.fire,
                job.schedule.trigger(),
                args=[job.id],
                id=job.id,
                misfire_grace_time=int(job.grace.total_seconds()),
                coalesce=True,
                replace_existing=True,
            )
        aps.start()
        self._aps = aps
        # Take the lease (and catch up missed runs) now, not 15 s from now.
        aps.add_job(self.renew_lease, id="scheduler_startup", replace_existing=True)
        return self

    def jobs(self) -> list[ScheduledJob]:
        return self._aps.get_jobs() if self._aps else []

    def renew_lease(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self._lock:
            was_leader = self._leader
            try:
                self._leader = self.runner.acquire_lease(now)
            except Exception:  # a database hiccup: stop acting as leader until the next renewal works
                log.exception("scheduler lease renewal failed")
                self._leader = False
                return
            if self._leader and not was_leader:
                log.info("%s leads the scheduled jobs", self.runner.holder)
                caught_up = self.runner.catch_up(now)
                if caught_up:
                    log.info("caught up missed runs: %s", ", ".join(caught_up))

    def fire(self, job_id: str, now: datetime | None = None) -> None:
        """What APScheduler calls on a job's trigger: only the leader acts."""
        if not self._leader:
            return
        self.runner.run_due(job_id, now or utcnow())

    def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        if self._leader:
            self.runner.release_lease(utcnow())
            self._leader = False
