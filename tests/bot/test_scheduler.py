"""The scheduler: schedules, runs recorded once per instant across restarts and replicas, the lease."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.config import WeeklySchedule, load_settings
from bot.core.db import make_engine
from bot.core.models import JobRun, OutboxMessage
from bot.runtime.scheduler import (
    LEASE_SECONDS,
    Every,
    JobRunner,
    Scheduler,
    Weekly,
    build_jobs,
    runs_of,
)

SETTINGS = load_settings(retro_schedule="fri 15:00", digest_schedule="mon 09:00", timezone="UTC")
FRIDAY_RETRO = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def runner(engine: Engine, holder: str | None = None) -> JobRunner:
    return JobRunner(engine=engine, settings=SETTINGS, jobs=build_jobs(SETTINGS), holder=holder)


def outbox_keys(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage.key).order_by(OutboxMessage.id)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "days", "hour", "minute"),
    [
        ("fri 15:00", (4,), 15, 0),
        ("Mon-Fri 09:30", (0, 1, 2, 3, 4), 9, 30),
        ("mon,thu 7:05", (0, 3), 7, 5),
        ("daily 00:00", tuple(range(7)), 0, 0),
    ],
)
def test_schedule_format(text: str, days: tuple[int, ...], hour: int, minute: int) -> None:
    assert WeeklySchedule.parse(text) == WeeklySchedule(days=days, hour=hour, minute=minute)


@pytest.mark.parametrize("text", ["friday 15:00", "fri", "fri 24:00", "fri-mon 10:00", "15:00", "fri 9:5"])
def test_malformed_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        WeeklySchedule.parse(text)


def test_previous_instant_is_local_time_across_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    monday_nine = WeeklySchedule.parse("mon 09:00")
    # Summer: 09:00 CEST is 07:00 UTC; winter: 09:00 CET is 08:00 UTC.
    assert monday_nine.previous(datetime(2026, 7, 8, tzinfo=UTC), berlin) == datetime(
        2026, 7, 6, 7, tzinfo=UTC
    )
    assert monday_nine.previous(datetime(2026, 11, 23, 8, tzinfo=UTC), berlin) == datetime(
        2026, 11, 23, 8, tzinfo=UTC
    )
    assert monday_nine.previous(datetime(2026, 11, 23, 7, 59, tzinfo=UTC), berlin) == datetime(
        2026, 11, 16, 8, tzinfo=UTC
    )
    every = Every(15, SETTINGS)
    assert every.previous(datetime(2026, 11, 23, 10, 44, 59, tzinfo=UTC)) == datetime(
        2026, 11, 23, 10, 30, tzinfo=UTC
    )


def test_a_run_happens_once_even_across_a_restart(database_url: str) -> None:
    first = make_engine(database_url)
    assert runner(first).run_due("retro_reminder", FRIDAY_RETRO + timedelta(seconds=1)) == FRIDAY_RETRO
    assert runner(first).run_due("retro_reminder", FRIDAY_RETRO + timedelta(seconds=30)) is None
    first.dispose()
    # The process restarts three minutes later: start-up catch-up finds the run recorded.
    second = make_engine(database_url)
    assert "retro_reminder" not in runner(second).catch_up(FRIDAY_RETRO + timedelta(minutes=3))
    with Session(second) as session:
        assert runs_of(session, "retro_reminder") == [FRIDAY_RETRO]
    assert outbox_keys(second).count(f"retro:{FRIDAY_RETRO.isoformat()}") == 1
    second.dispose()


def test_a_run_missed_while_down_runs_once_at_start_up(engine: Engine) -> None:
    # Down from 14:50 to 15:40: the 15:00 reminder is caught up at start-up, once.
    assert "retro_reminder" in runner(engine).catch_up(FRIDAY_RETRO + timedelta(minutes=40))
    assert "retro_reminder" not in runner(engine).catch_up(FRIDAY_RETRO + timedelta(minutes=45))
    assert outbox_keys(engine).count(f"retro:{FRIDAY_RETRO.isoformat()}") == 1
    # Down past the reminder's one-hour grace: a reminder after the retro would help nobody.
    next_retro = FRIDAY_RETRO + timedelta(days=7)
    assert "retro_reminder" not in runner(engine).catch_up(next_retro + timedelta(hours=2))
    assert f"retro:{next_retro.isoformat()}" not in outbox_keys(engine)


def test_a_failed_run_leaves_no_record_and_can_run_again(engine: Engine) -> None:
    from bot.runtime.scheduler import Job

    calls: list[datetime] = []

    def flaky(**kwargs: object) -> None:
        calls.append(kwargs["scheduled_for"])  # type: ignore[arg-type]
        if len(calls) == 1:
            raise RuntimeError("Slack is down")

    jobs = [Job("flaky", Every(15, SETTINGS), timedelta(minutes=15), flaky)]
    flaky_runner = JobRunner(engine=engine, settings=SETTINGS, jobs=jobs)
    at = datetime(2026, 11, 23, 10, 1, tzinfo=UTC)
    with pytest.raises(RuntimeError):
        flaky_runner.run_due("flaky", at)
    assert flaky_runner.run_due("flaky", at + timedelta(minutes=1)) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert flaky_runner.run_due("flaky", at + timedelta(minutes=2)) is None
    assert len(calls) == 2


def test_lease_one_leader_and_take_over_after_expiry(engine: Engine) -> None:
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    a, b = runner(engine, "replica-a"), runner(engine, "replica-b")
    assert a.acquire_lease(now)
    assert not b.acquire_lease(now + timedelta(seconds=1))
    assert a.acquire_lease(now + timedelta(seconds=15))  # renewal
    assert not b.acquire_lease(now + timedelta(seconds=15 + LEASE_SECONDS - 1))
    # A died after its renewal at +15 s: B takes over once the lease expired, within a minute.
    assert b.acquire_lease(now + timedelta(seconds=15 + LEASE_SECONDS + 1))
    assert not a.acquire_lease(now + timedelta(seconds=62))
    # A clean stop hands over at once.
    b.release_lease(now + timedelta(seconds=70))
    assert a.acquire_lease(now + timedelta(seconds=70, microseconds=1))


def test_scheduler_takes_the_lease_and_catches_up_at_start(engine: Engine) -> None:
    scheduler = Scheduler(engine=engine, settings=SETTINGS)
    scheduler.renew_lease(FRIDAY_RETRO + timedelta(minutes=10))
    assert scheduler.is_leader
    assert f"retro:{FRIDAY_RETRO.isoformat()}" in outbox_keys(engine)
    follower = Scheduler(engine=engine, settings=SETTINGS)
    follower.renew_lease(FRIDAY_RETRO + timedelta(minutes=10, seconds=20))
    assert not follower.is_leader
    follower.fire("retro_reminder", FRIDAY_RETRO + timedelta(days=7))
    assert f"retro:{(FRIDAY_RETRO + timedelta(days=7)).isoformat()}" not in outbox_keys(engine)


def test_apscheduler_jobs_have_fixed_ids_timezone_grace_and_coalescing(engine: Engine) -> None:
    settings = load_settings(timezone="Europe/Berlin", retro_schedule="fri 15:00")
    scheduler = Scheduler(engine=engine, settings=settings).start()
    try:
        jobs = {job.id: job for job in scheduler.jobs()}
        assert {"scheduler_lease", "retro_reminder", "nudges"} <= set(jobs)
        retro = jobs["retro_reminder"]
        assert retro.coalesce and retro.misfire_grace_time == 3600
        assert str(retro.trigger.timezone) == "Europe/Berlin"
        assert "day_of_week='fri'" in str(retro.trigger) and "hour='15'" in str(retro.trigger)
        assert jobs["nudges"].misfire_grace_time == 900
        assert all(job.args in ([], (), [job.id], (job.id,)) for job in jobs.values())  # nothing pickled
    finally:
        scheduler.stop()


@pytest.mark.postgres
def test_two_replicas_on_postgresql_run_a_scheduled_instant_once(request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url")
    from tests.conftest import _truncate_postgres

    _truncate_postgres(url)
    engines = [make_engine(url), make_engine(url)]
    job_id = "weekly_digest" if "weekly_digest" in {j.id for j in build_jobs(SETTINGS)} else "retro_reminder"
    schedule = Weekly(SETTINGS.digest if job_id == "weekly_digest" else SETTINGS.retro, SETTINGS)
    instant = schedule.previous(datetime(2026, 11, 27, 12, tzinfo=UTC))
    barrier = threading.Barrier(2)
    results: list[object] = []

    def replica(engine: Engine, name: str) -> None:
        scheduler = Scheduler(engine=engine, settings=SETTINGS)
        scheduler.runner.holder = name
        barrier.wait()
        # Both believe they lead (the lease is bypassed on purpose): the job_runs claim still decides.
        results.append(scheduler.runner.run_due(job_id, instant + timedelta(seconds=2)))

    threads = [threading.Thread(target=replica, args=(e, f"replica-{i}")) for i, e in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results, key=str) == sorted([instant, None], key=str)
    with Session(engines[0]) as session:
        assert len(session.exec(select(JobRun).where(JobRun.job_id == job_id)).all()) == 1
    prefix = "digest:" if job_id == "weekly_digest" else "retro:"
    assert len([k for k in outbox_keys(engines[0]) if k.startswith(prefix)]) == 1
    for engine in engines:
        engine.dispose()
