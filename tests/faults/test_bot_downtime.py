"""The bot down for three days over the weekly digest: when it returns, the digest it missed is posted once,
saying it is late, for the week it was due; the retro reminder it missed and a nudge left in the outbox are
stale by then, and are dropped with a log line instead of sent."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.config import Settings, load_settings
from bot.core.db import session_scope
from bot.core.models import OutboxMessage, OutboxStatus
from bot.devtools.sandbox import DEMO_HUMANS, SlackSandbox
from bot.runtime.scheduler import Scheduler, runs_of
from bot.runtime.server import build_process
from bot.slack.outbox import enqueue
from tests.bot.test_outbox import BOT_TOKEN
from tests.factories import add_incident
from tests.faults.ledger import Figures

pytestmark = pytest.mark.faults

DIGEST_DUE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 09:00
WENT_DOWN = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)  # Saturday evening
BACK = WENT_DOWN + timedelta(days=3)  # Tuesday evening
LAST_WEEK = DIGEST_DUE - timedelta(days=7, hours=-1)  # Monday 16 Nov 10:00, the retro's time


def deliver(settings: Settings, now: datetime) -> None:
    """The bot at `now`: its scheduler takes the lease (catching up what it missed), its outbox sends."""
    process = build_process(settings, clock=lambda: now)
    Scheduler(engine=process.runtime.engine, settings=settings).renew_lease(now)
    while process.outbox.run_once(now):
        pass
    process.runtime.engine.dispose()


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox(bot_token=BOT_TOKEN) as sb:
        sb.create_channel("postmortems", members=[u.id for u in DEMO_HUMANS])
        yield sb


def test_the_digest_missed_by_three_days_of_downtime_is_posted_once_late_for_its_week(
    engine: Engine, database_url: str, sandbox: SlackSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        database_url=database_url,
        slack_bot_token=BOT_TOKEN,
        slack_api_url=sandbox.api_url,
        timezone="UTC",
        digest_schedule="mon 09:00",
        retro_schedule="mon 10:00",
    )
    figures = Figures(sent=1)  # the digest due while the bot was down
    with session_scope(engine) as session:
        add_incident(session, at=DIGEST_DUE - timedelta(days=3), title="Checkout down", resolve=1800)
    # The week before, the jobs ran on time; on Saturday evening a nudge was enqueued just before the crash.
    deliver(settings, LAST_WEEK + timedelta(minutes=2))
    with session_scope(engine) as session:
        enqueue(
            session,
            key="nudge:action_item:1:0",
            channel="U0ALICE",
            at=WENT_DOWN,
            text="Your action item is due",
            stale_at=WENT_DOWN + timedelta(hours=4),
        )

    # Back three days later, the digest (Monday 09:00) and the retro reminder (Monday 10:00) missed.
    with caplog.at_level(logging.INFO):
        deliver(settings, BACK + timedelta(minutes=1))  # a second restart changes nothing
        deliver(settings, BACK)

    digests = [m for m in sandbox.messages("postmortems") if "Week of 16 Nov" in str(m["blocks"])]
    texts = [str(m["blocks"]) for m in digests]
    figures.delivered = len(digests)
    figures.lost = max(0, 1 - len(digests))
    figures.duplicated = max(0, len(digests) - 1)
    assert len(digests) == 1 and "Posted late: this digest was due Mon 23 Nov 09:00" in texts[0], texts
    assert "Week of 16 Nov to 22 Nov 2026" in texts[0]
    retros = [m for m in sandbox.messages("postmortems") if "Retro reminder" in m["text"]]
    assert len(retros) == 1  # last week's, on time; this week's was stale when the bot came back
    with Session(engine) as session:
        nudge = session.exec(select(OutboxMessage).where(OutboxMessage.key == "nudge:action_item:1:0")).one()
        figures.acknowledged = figures.stored = runs_of(session, "weekly_digest").count(DIGEST_DUE)
    assert nudge.status == OutboxStatus.DROPPED
    assert sandbox.calls_to("chat.postMessage") and all(
        call["args"].get("channel") != "U0ALICE" for call in sandbox.calls_to("chat.postMessage")
    )
    logged = [r.getMessage() for r in caplog.records]
    assert any("retro_reminder missed its run" in line and "dropped as stale" in line for line in logged)
    assert any("nudge:action_item:1:0" in line and "dropped: stale" in line for line in logged)
    figures.report("digest after 3 days down")
