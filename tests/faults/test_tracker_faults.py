"""The tracker failing: down for half an hour (a controlled clock, no sleeping), rate-limiting, refusing
for good, and the bot SIGKILLed between the tracker's answer and the commit. Every item ends with exactly
one issue."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.core.db import make_engine, upgrade
from bot.core.models import ActionItem, TrackerLink
from bot.devtools.sandbox.github import GitHubStandIn
from bot.devtools.sandbox.jira import JiraStandIn
from bot.devtools.stack import LocalStack, tracker_settings
from bot.flows.context import Runtime
from bot.flows.trackers import issue_changed
from bot.runtime.tracker_worker import TrackerWorker, make_tracker
from bot.trackers.links import owe_sync
from tests.factories import add_action_item, add_incident
from tests.faults.test_kill_and_replicas import ServeProcess

pytestmark = pytest.mark.faults

MINUTE = timedelta(minutes=1)


@pytest.fixture(params=["jira", "github"])
def stand_in(request: pytest.FixtureRequest) -> Iterator[JiraStandIn | GitHubStandIn]:
    made = JiraStandIn() if request.param == "jira" else GitHubStandIn()
    with made:
        yield made


def seed_items(database_url: str, count: int, tracker: str, at: datetime) -> list[int]:
    """A published post-mortem with `count` items, each owed its issue."""
    engine = make_engine(database_url)
    with Session(engine) as session:
        incident = add_incident(session, at=at, resolve=600, document=600)
        items = [add_action_item(session, incident, text=f"Item {n}") for n in range(count)]
        owe_sync(session, items, tracker=tracker, at=at)
        session.commit()
        ids = [item.id for item in items]
    engine.dispose()
    return ids  # type: ignore[return-value]


def links(stack: LocalStack) -> list[TrackerLink]:
    assert stack.server is not None and stack.server.runtime is not None
    with Session(stack.server.runtime.engine) as session:
        return list(session.exec(select(TrackerLink).order_by(TrackerLink.id)))


def issue_count(stand_in: JiraStandIn | GitHubStandIn) -> int:
    return len(stand_in.issues)


def driven_worker(runtime: Runtime, *, poll_minutes: int = 0) -> TrackerWorker:
    """A tracker worker the test drives with its own clock (`run_once(now)`)."""
    tracker = make_tracker(runtime.settings)
    assert tracker is not None
    return TrackerWorker(
        engine=runtime.engine,
        tracker=tracker,
        on_remote_change=lambda name, issue_id, done, at: issue_changed(
            runtime, tracker=name, issue_id=issue_id, done=done, at=at
        ),
        max_backoff=300,
        poll_minutes=poll_minutes,
    )


@pytest.fixture
def tracked(
    database_url: str, stand_in: JiraStandIn | GitHubStandIn
) -> Iterator[tuple[LocalStack, TrackerWorker]]:
    """The bot serving with its own tracker worker stopped, and a worker the test drives."""
    with LocalStack(database_url, **tracker_settings(stand_in), scheduler_enabled=False) as stack:
        assert stack.server is not None and stack.server.process is not None
        stack.server.process.trackers.stop()  # type: ignore[union-attr]
        yield stack, driven_worker(stack.server.process.runtime)


def test_tracker_down_for_30_minutes_then_every_issue_is_created_once(
    tracked: tuple[LocalStack, TrackerWorker], stand_in: JiraStandIn | GitHubStandIn, database_url: str
) -> None:
    stack, worker = tracked
    now = datetime.now(UTC)
    stand_in.faults.down = True
    seed_items(database_url, 3, stand_in.__class__.__name__.removesuffix("StandIn").lower(), now)
    end = now + 30 * MINUTE
    while now < end:
        worker.run_once(now)
        now += timedelta(seconds=10)
    calls_while_down = len(stand_in.calls)
    # Backing off (2, 4 ... 300 s): about a dozen attempts per item in 30 minutes, not one every 10 s.
    assert 3 <= calls_while_down <= 3 * 16, calls_while_down
    assert issue_count(stand_in) == 0
    assert all(link.sync == "pending" and link.attempts >= 8 for link in links(stack))
    health = json.loads(urllib.request.urlopen(stack.bot_url + "/healthz").read())
    assert health["status"] == "degraded"
    assert health["trackers"] == {"pending": 3, "failing": 3, "parked": 0}

    stand_in.faults.down = False
    for _ in range(6):  # the next attempt is at most max_backoff (5 minutes) away
        worker.run_once(now)
        now += MINUTE
    assert issue_count(stand_in) == 3
    assert all(link.sync == "synced" and link.issue_id for link in links(stack))
    health = json.loads(urllib.request.urlopen(stack.bot_url + "/healthz").read())
    assert health["status"] == "ok" and health["trackers"] == {"pending": 0, "failing": 0, "parked": 0}
    print(f"tracker down 30 min: calls while down={calls_while_down} issues={issue_count(stand_in)}")


def test_a_rate_limited_answer_waits_what_the_tracker_asked_and_counts_no_failure(
    tracked: tuple[LocalStack, TrackerWorker], stand_in: JiraStandIn | GitHubStandIn, database_url: str
) -> None:
    stack, worker = tracked
    now = datetime.now(UTC).replace(microsecond=0)
    stand_in.faults.rate_limited, stand_in.faults.retry_after = 1, 120
    seed_items(database_url, 1, "jira" if isinstance(stand_in, JiraStandIn) else "github", now)
    worker.run_once(now)
    [link] = links(stack)
    assert link.attempts == 0 and "rate-limited" in (link.last_error or "")
    # Retry-After (Jira), x-ratelimit-reset (GitHub's primary limit): two minutes, not the 2 s back-off.
    assert timedelta(seconds=100) <= link.next_attempt_at - now <= timedelta(seconds=121)
    worker.run_once(now + timedelta(seconds=60))
    assert issue_count(stand_in) == 0
    worker.run_once(now + timedelta(seconds=125))
    assert issue_count(stand_in) == 1


def test_a_refusal_parks_the_item_with_the_reason_and_healthz_says_degraded(
    tracked: tuple[LocalStack, TrackerWorker], stand_in: JiraStandIn | GitHubStandIn, database_url: str
) -> None:
    stack, worker = tracked
    now = datetime.now(UTC)
    # A token the tracker does not accept: retrying cannot fix that.
    if isinstance(stand_in, JiraStandIn):
        stand_in.api_token = "rotated"
    else:
        stand_in.token = "rotated"
    seed_items(database_url, 1, "jira" if isinstance(stand_in, JiraStandIn) else "github", now)
    worker.run_once(now)
    [link] = links(stack)
    assert link.sync == "parked" and "401" in (link.last_error or "")
    health = json.loads(urllib.request.urlopen(stack.bot_url + "/healthz").read())
    assert health["status"] == "degraded" and health["trackers"]["parked"] == 1
    # /metrics serves the last periodic refresh: take one now rather than wait for it.
    assert stack.server is not None and stack.server.process is not None
    stack.server.process.metrics.refresh()
    metrics = urllib.request.urlopen(stack.bot_url + "/metrics").read().decode()
    assert 'postmortem_bot_tracker_links{state="parked"} 1.0' in metrics


def test_sigkill_between_the_trackers_answer_and_the_commit_makes_no_second_issue(
    sandbox,
    stand_in: JiraStandIn | GitHubStandIn,
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    database_url = f"sqlite:///{tmp_path / 'killed.db'}"
    upgrade(database_url)
    kind = "jira" if isinstance(stand_in, JiraStandIn) else "github"
    server = ServeProcess(sandbox, database_url)
    server.env.update({key.upper(): str(value) for key, value in tracker_settings(stand_in).items()})
    killed = threading.Event()

    def kill_once() -> None:
        # The tracker has stored the issue; the bot dies before it can record it.
        if not killed.is_set():
            killed.set()
            server.kill()

    stand_in.faults.after_create = kill_once
    try:
        server.start()
        # Items owed their issues once the bot is up (its worker finds them at its next poll), so the
        # kill cannot land while the test still waits for the bot to start.
        seed_items(database_url, 3, kind, datetime.now(UTC))
        sandbox.wait_for(killed.is_set, timeout=30, message="the bot never created an issue")
        assert issue_count(stand_in) == 1
        server.start()  # the same database; its claim on the item expires after OUTBOX_CLAIM_SECONDS
        engine = make_engine(database_url)

        def settled() -> bool:
            with Session(engine) as session:
                rows = list(session.exec(select(TrackerLink)))
            return len(rows) == 3 and all(row.sync == "synced" for row in rows)

        sandbox.wait_for(settled, timeout=60, message="the items never got their issues")
        with Session(engine) as session:
            rows = list(session.exec(select(TrackerLink)))
            assert len(list(session.exec(select(ActionItem)))) == 3
        engine.dispose()
    finally:
        server.stop()
    assert issue_count(stand_in) == 3  # the first item's issue was found again by its key, not created twice
    assert len({row.issue_id for row in rows}) == 3
    print(f"SIGKILL after create ({kind}): issues={issue_count(stand_in)} items=3 duplicates=0")


def test_without_webhooks_tracker_poll_minutes_brings_changes_back(
    tracked: tuple[LocalStack, TrackerWorker], stand_in: JiraStandIn | GitHubStandIn, database_url: str
) -> None:
    """No public URL: the tracker's webhooks never arrive (the stand-in sends none), the poll reads them."""
    stack, _ = tracked
    assert stack.server is not None and stack.server.process is not None
    worker = driven_worker(stack.server.process.runtime, poll_minutes=5)
    now = datetime.now(UTC)
    kind = "jira" if isinstance(stand_in, JiraStandIn) else "github"
    first, second = seed_items(database_url, 2, kind, now)
    worker.run_once(now)  # creates both issues, and polls (nothing changed yet)
    issue_ids = {link.action_item_id: link.issue_id for link in links(stack)}
    # Jira's issues go by id or key, GitHub's by number.
    as_ref = int if isinstance(stand_in, GitHubStandIn) else str
    stand_in.close(as_ref(issue_ids[first]))  # type: ignore[arg-type]
    stand_in.delete(as_ref(issue_ids[second]))  # type: ignore[arg-type]

    def status(item_id: int) -> str:
        with Session(stack.server.runtime.engine) as session:  # type: ignore[union-attr]
            return session.get(ActionItem, item_id).status  # type: ignore[union-attr]

    worker.run_once(now + 4 * MINUTE)
    assert status(first) == "open"  # not polled yet: every 5 minutes
    worker.run_once(now + 5 * MINUTE)
    assert status(first) == "done"
    assert [link.sync for link in links(stack) if link.action_item_id == second] == ["unlinked"]


def test_two_replicas_syncing_at_once_make_one_issue_per_item(
    tracked: tuple[LocalStack, TrackerWorker], stand_in: JiraStandIn | GitHubStandIn, database_url: str
) -> None:
    stack, _ = tracked
    assert stack.server is not None and stack.server.process is not None
    replicas = [driven_worker(stack.server.process.runtime) for _ in range(2)]
    stand_in.faults.delay = 0.01  # each call takes a moment, so the replicas' passes overlap
    kind = "jira" if isinstance(stand_in, JiraStandIn) else "github"
    for round_ in range(3):  # items owed while both replicas are busy
        seed_items(database_url, 4, kind, datetime.now(UTC))

        def settled() -> bool:
            return all(link.sync == "synced" for link in links(stack))

        def work(worker: TrackerWorker) -> None:
            deadline = time.monotonic() + 60
            while not settled() and time.monotonic() < deadline:
                worker.run_once()

        threads = [threading.Thread(target=work, args=(worker,)) for worker in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert settled(), f"round {round_}: not every item got its issue"
    assert issue_count(stand_in) == 12
    assert len({link.issue_id for link in links(stack)}) == 12
