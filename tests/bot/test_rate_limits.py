"""Slack's rate limits: the tier model (bursts, then one call per interval), the sandbox enforcing it with
429 and Retry-After, the outbox pacing itself by it, and urgent rows claimed before routine ones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine

from bot.core.clock import utcnow
from bot.core.db import session_scope
from bot.devtools.sandbox import ManualClock, SlackSandbox
from bot.runtime.outbox_claims import claim_due
from bot.runtime.outbox_pacing import Pacer
from bot.runtime.outbox_worker import OutboxWorker
from bot.slack.channels import ChannelDirectory
from bot.slack.outbox import Priority, enqueue
from bot.slack.rate_limits import POSTING, TIERS, RateGate, limits_for, minimum_seconds
from tests.bot.test_outbox import BOT_TOKEN


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock) -> Iterator[SlackSandbox]:
    with SlackSandbox(bot_token=BOT_TOKEN) as sb:
        sb.rate_limits.enforced = True
        sb.rate_limits.clock = clock
        yield sb


def client(sandbox: SlackSandbox) -> WebClient:
    made = WebClient(base_url=sandbox.api_url, token=BOT_TOKEN)
    made.retry_handlers = []
    return made


def test_a_limit_allows_its_burst_then_one_call_per_interval() -> None:
    gate, tier2 = RateGate(), limits_for("conversations.create")
    assert tier2 == [(("method", "conversations.create"), TIERS[2])]
    for _ in range(TIERS[2].burst):
        assert gate.wait(tier2, 100.0) == 0
        gate.take(tier2, 100.0)
    assert gate.wait(tier2, 100.0) == pytest.approx(3.0)  # Tier 2: 20 a minute
    assert gate.wait(tier2, 103.0) == 0
    gate.hold(tier2, 200.0)  # a 429 said: not before 200
    assert gate.wait(tier2, 150.0) == pytest.approx(50.0)


def test_the_minimum_time_is_the_slowest_limit() -> None:
    storm = [("conversations.create", None)] * 200 + [("chat.postMessage", f"C{n}") for n in range(200)]
    assert minimum_seconds(storm) == pytest.approx((200 - TIERS[2].burst) * 3.0)
    one_channel = [("chat.postMessage", "C1")] * 10
    assert minimum_seconds(one_channel) == pytest.approx((10 - POSTING.burst) * 1.0)


def test_the_sandbox_answers_429_with_retry_after_per_method_and_per_channel(
    sandbox: SlackSandbox, clock: ManualClock
) -> None:
    web = client(sandbox)
    for n in range(TIERS[2].burst):
        web.conversations_create(name=f"storm-{n}")
    with pytest.raises(SlackApiError) as refused:
        web.conversations_create(name="storm-over")
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["Retry-After"] == "3"
    assert "storm-over" not in {c["name"] for c in sandbox.snapshot()["channels"]}  # refused: no effect
    clock.advance(3)
    web.conversations_create(name="storm-over")

    first, second = (sandbox.create_channel(name, members=["U0ALICE", "U0BOT"]) for name in ("a", "b"))
    for _ in range(POSTING.burst):
        web.chat_postMessage(channel=first, text="hi")
    with pytest.raises(SlackApiError) as limited:
        web.chat_postMessage(channel=first, text="one too many")
    assert limited.value.response.headers["Retry-After"] == "1"
    web.chat_postMessage(channel=second, text="another channel has its own limit")


def test_the_outbox_paces_itself_and_gets_no_429(
    engine: Engine, sandbox: SlackSandbox, clock: ManualClock
) -> None:
    channel = sandbox.create_channel("paced", members=["U0ALICE", "U0BOT"])
    with session_scope(engine) as session:
        for n in range(6):
            at = datetime.fromtimestamp(clock(), UTC)
            enqueue(session, key=f"paced:{n}", channel=channel, at=at, text=f"message {n}")
    web = client(sandbox)
    worker = OutboxWorker(
        engine=engine,
        client=web,
        channels=ChannelDirectory(web),
        pacer=Pacer(),
        clock=lambda: datetime.fromtimestamp(clock(), UTC),
    )
    assert worker.run_once() == POSTING.burst  # the rest waits for the channel's rate
    for _ in range(3):
        clock.advance(1)
        worker.run_once()
    assert len(sandbox.messages(channel)) == 6
    assert not [c for c in sandbox.calls if c["status"] == 429]


def test_urgent_rows_are_claimed_before_older_routine_ones(engine: Engine) -> None:
    with session_scope(engine) as session:
        enqueue(session, key="digest", channel="C1", at=utcnow(), text="d", priority=Priority.ROUTINE)
        enqueue(session, key="summary", channel="C1", at=utcnow(), text="s")
        enqueue(session, key="card", channel="C2", at=utcnow(), text="c", priority=Priority.URGENT)
    claimed = claim_due(engine, worker="w", now=utcnow(), lease=60, batch=20)
    assert [row.key for row, _ in claimed] == ["card", "summary", "digest"]
