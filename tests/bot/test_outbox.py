"""The outbox's delivery guarantee against the sandbox: once per row across workers, no second post after
a crash between sending and recording, in order per logical message, parked (and visible) when hopeless."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from io import BytesIO

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.clock import utcnow
from bot.core.config import load_settings
from bot.core.db import session_scope
from bot.core.models import OutboxMessage, OutboxStatus, SlackMessage
from bot.devtools.sandbox import SlackSandbox
from bot.runtime.outbox_claims import claim_due
from bot.runtime.outbox_errors import MAX_ATTEMPTS
from bot.runtime.outbox_worker import OUTBOX_EVENT_TYPE, OutboxWorker
from bot.runtime.server import build_process, create_wsgi_app
from bot.slack.channels import ChannelDirectory
from bot.slack.outbox import enqueue

BOT_TOKEN = "xoxb-sandbox"


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox(bot_token=BOT_TOKEN) as sb:
        yield sb


@pytest.fixture
def channel(sandbox: SlackSandbox) -> str:
    return sandbox.create_channel("inc-outbox", members=["U0ALICE", "U0BOT"])


def make_worker(engine: Engine, sandbox: SlackSandbox, timeout: float = 2.0) -> OutboxWorker:
    client = WebClient(base_url=sandbox.api_url, token=BOT_TOKEN, timeout=timeout)  # type: ignore[arg-type]
    client.retry_handlers = []
    return OutboxWorker(engine=engine, client=client, channels=ChannelDirectory(client))


def later(minutes: int = 60):  # type: ignore[no-untyped-def]
    return utcnow() + timedelta(minutes=minutes)


def keys_in(sandbox: SlackSandbox, channel: str) -> Counter[str]:
    """How many messages of the channel (threads included) carry each outbox key."""
    found: Counter[str] = Counter()
    for message in sandbox.messages(channel, "all"):
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") == OUTBOX_EVENT_TYPE:
            found[metadata["event_payload"]["key"]] += 1
    return found


def owe(engine: Engine, key: str, channel: str, message_key: str | None = None, text: str = "hi") -> None:
    with session_scope(engine) as session:
        enqueue(session, key=key, channel=channel, at=utcnow(), message_key=message_key, text=text)


def row(engine: Engine, key: str) -> OutboxMessage:
    with Session(engine) as session:
        return session.exec(select(OutboxMessage).where(OutboxMessage.key == key)).one()


def test_posts_carry_their_key_as_message_metadata(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    owe(engine, "k1", channel)
    assert make_worker(engine, sandbox).run_once() == 1
    assert keys_in(sandbox, channel) == {"k1": 1}
    assert row(engine, "k1").status == OutboxStatus.SENT


def test_a_post_whose_answer_was_lost_is_recorded_not_posted_again(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    owe(engine, "card:1:a", channel, message_key="card:1")
    worker = make_worker(engine, sandbox, timeout=0.3)
    # Slack posts the message, but the client times out before the answer arrives.
    sandbox.faults.fail_next("chat.postMessage", "applied_timeout", timeout_seconds=1.0)
    worker.run_once()
    first = row(engine, "card:1:a")
    assert (first.status, first.attempts) == (OutboxStatus.PENDING, 1)
    assert keys_in(sandbox, channel) == {"card:1:a": 1}

    worker.run_once(now=later())
    assert keys_in(sandbox, channel) == {"card:1:a": 1}  # looked up in the history, not re-posted
    assert row(engine, "card:1:a").status == OutboxStatus.SENT
    with Session(engine) as session:
        location = session.get(SlackMessage, "card:1")
    [message] = sandbox.messages(channel)
    assert location is not None and location.ts == message["ts"]  # later updates edit that message


def test_a_direct_message_whose_answer_was_lost_is_found_in_the_dm_not_parked(
    engine: Engine, sandbox: SlackSandbox
) -> None:
    # Nudges go "to" a person (a user id) and land in the app's DM with them: the retry reads that DM.
    owe(engine, "nudge:7:24h", "U0ALICE", text="Your post-mortem for #7 is waiting")
    worker = make_worker(engine, sandbox, timeout=0.3)
    sandbox.faults.fail_next("chat.postMessage", "applied_timeout", timeout_seconds=1.0)
    worker.run_once()
    assert row(engine, "nudge:7:24h").status == OutboxStatus.PENDING
    dm = sandbox._im_for("U0ALICE").id
    assert keys_in(sandbox, dm) == {"nudge:7:24h": 1}

    worker.run_once(now=later())
    sent = row(engine, "nudge:7:24h")
    assert (sent.status, sent.last_error) == (OutboxStatus.SENT, None)
    assert keys_in(sandbox, dm) == {"nudge:7:24h": 1}  # found in the DM, not posted again


def test_a_claim_abandoned_by_a_dead_worker_is_checked_before_resending(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    owe(engine, "posted-then-died", channel)
    owe(engine, "died-before-posting", channel)
    # Worker 1 claims both rows, posts the first, and dies before recording anything.
    dead = make_worker(engine, sandbox)
    claimed = claim_due(engine, worker=dead.worker_id, now=utcnow(), lease=60, batch=20)
    assert [r.key for r, retried in claimed] == ["posted-then-died", "died-before-posting"]
    assert not any(retried for _, retried in claimed)
    dead._client.chat_postMessage(
        channel=channel,
        text="hi",
        metadata={"event_type": OUTBOX_EVENT_TYPE, "event_payload": {"key": "posted-then-died"}},
    )
    survivor = make_worker(engine, sandbox)
    assert survivor.run_once() == 0  # the lease still holds
    assert survivor.run_once(now=later()) == 2  # expired: taken over
    assert keys_in(sandbox, channel) == {"posted-then-died": 1, "died-before-posting": 1}
    assert {row(engine, k).status for k in ("posted-then-died", "died-before-posting")} == {"sent"}


def test_a_channel_hears_its_messages_in_order_even_when_the_first_is_retried(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    owe(engine, "card", channel, message_key="card:9", text="the card")
    owe(engine, "prompt", channel, text="write the post-mortem")
    sandbox.faults.fail_next("chat.postMessage", "server_error")
    worker = make_worker(engine, sandbox)
    worker.run_once()  # the card fails once and waits its back-off
    assert worker.run_once() == 0  # the prompt does not overtake it
    worker.run_once(now=later())
    worker.run_once(now=later())
    assert [m["text"] for m in sandbox.messages(channel)] == ["the card", "write the post-mortem"]


def test_an_upload_whose_answer_was_lost_is_not_uploaded_twice(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    from bot.slack.outbox import enqueue_upload

    with session_scope(engine) as session:
        enqueue_upload(
            session, key="doc:1", channel=channel, at=utcnow(), filename="pm-1.md", content=b"# x", title="PM"
        )
    worker = make_worker(engine, sandbox, timeout=0.3)
    sandbox.faults.fail_next("files.completeUploadExternal", "applied_timeout", timeout_seconds=1.0)
    worker.run_once()
    worker.run_once(now=later())
    shared = [m for m in sandbox.messages(channel, "all") if m.get("files")]
    assert len(shared) == 1 and row(engine, "doc:1").status == OutboxStatus.SENT


def test_an_update_waits_for_the_first_post_of_its_message(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    owe(engine, "card:7:triggered", channel, message_key="card:7", text="triggered")
    owe(engine, "card:7:resolved", channel, message_key="card:7", text="resolved")
    owe(engine, "other", channel)
    sandbox.faults.fail_next("chat.postMessage", "server_error")
    worker = make_worker(engine, sandbox)
    worker.run_once()  # the first post fails: its update must not become a second card
    assert row(engine, "card:7:resolved").attempts == 0
    worker.run_once(now=later())
    worker.run_once(now=later())
    cards = [m for m in sandbox.messages(channel) if m["text"] in ("triggered", "resolved")]
    assert [m["text"] for m in cards] == ["resolved"]  # one message, updated in place
    assert len(sandbox.calls_to("chat.update")) == 1


def test_transient_failures_are_retried_for_days_and_never_park(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    owe(engine, "patient", channel)
    attempts = 60  # an hour apart: 2.5 days of 5xx, far past MAX_ATTEMPTS
    sandbox.faults.fail_next("chat.postMessage", "server_error", count=attempts)
    worker = make_worker(engine, sandbox)
    for hour in range(attempts):
        worker.run_once(now=later(60 * (hour + 1)))
        assert row(engine, "patient").status == OutboxStatus.PENDING
    assert row(engine, "patient").attempts == attempts > MAX_ATTEMPTS
    worker.run_once(now=later(60 * (attempts + 1)))
    assert row(engine, "patient").status == OutboxStatus.SENT
    assert keys_in(sandbox, channel) == {"patient": 1}


def test_a_refusal_no_retry_can_fix_parks_at_once_logged_and_reported_by_healthz(
    engine: Engine, sandbox: SlackSandbox, channel: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    owe(engine, "doomed", "C0GONE")  # Slack: channel_not_found
    owe(engine, "fine", channel)
    worker = make_worker(engine, sandbox)
    with caplog.at_level(logging.INFO, logger="bot.runtime.outbox_worker"):
        worker.run_once()
    parked = row(engine, "doomed")
    assert parked.status == OutboxStatus.PARKED and parked.attempts == 1
    assert "channel_not_found" in (parked.last_error or "")
    assert any(r.levelno == logging.ERROR and "parked" in r.getMessage() for r in caplog.records)
    assert row(engine, "fine").status == OutboxStatus.SENT

    settings = load_settings(database_url=database_url, slack_bot_token=BOT_TOKEN)
    process = build_process(settings)
    status, body = call_wsgi(create_wsgi_app(process, None), "GET", "/healthz")
    process.runtime.engine.dispose()
    assert status == 200 and '"status": "degraded"' in body and '"parked": 1' in body


def call_wsgi(app, method: str, path: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list) -> None:  # type: ignore[type-arg]
        answer["status"] = status

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": "0", "wsgi.input": BytesIO()}
    body = b"".join(app(environ, start_response))
    return int(answer["status"].split()[0]), body.decode()


def test_workers_racing_on_one_database_send_each_row_once(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    rows = 60
    with session_scope(engine) as session:
        for n in range(rows):
            enqueue(session, key=f"race:{n}", channel=channel, at=utcnow(), text=f"message {n}")
            # Every fourth row also updates a logical message, so ordering is raced too.
            if n % 4 == 0:
                enqueue(
                    session,
                    key=f"race:card:{n}",
                    channel=channel,
                    at=utcnow(),
                    message_key="card:race",
                    text=f"card {n}",
                )
    workers = [make_worker(engine, sandbox) for _ in range(4)]
    start = threading.Barrier(len(workers))

    def drain(worker: OutboxWorker) -> None:
        start.wait()
        while worker.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    while any(w.run_once() for w in workers):  # a row skipped while another worker held its lock
        pass
    found = keys_in(sandbox, channel)
    assert all(count == 1 for count in found.values()), found
    assert sum(1 for key in found if not key.startswith("race:card")) == rows
    assert len([m for m in sandbox.messages(channel) if m["text"].startswith("card")]) == 1
    with Session(engine) as session:
        statuses = set(session.exec(select(OutboxMessage.status)).all())
    assert statuses == {OutboxStatus.SENT}
    assert len(sandbox.calls_to("chat.postMessage")) == rows + 1  # no post was ever attempted twice


def test_a_row_that_fails_unexpectedly_is_retried_then_parked_not_claimed_forever(
    engine: Engine, sandbox: SlackSandbox, channel: str
) -> None:
    owe(engine, "malformed", channel)
    owe(engine, "fine", channel)
    with session_scope(engine) as session:
        broken = session.exec(select(OutboxMessage).where(OutboxMessage.key == "malformed")).one()
        broken.payload = {"blocks": []}  # no "text": a KeyError inside the worker, not a Slack error
    worker = make_worker(engine, sandbox)
    worker.run_once(now=later(1))
    broken = row(engine, "malformed")
    assert broken.attempts == 1 and "KeyError" in (broken.last_error or "")
    assert row(engine, "fine").status == OutboxStatus.SENT  # the rest of the batch went out
    for hour in range(MAX_ATTEMPTS):
        worker.run_once(now=later(60 * (hour + 2)))
    assert row(engine, "malformed").status == OutboxStatus.PARKED
