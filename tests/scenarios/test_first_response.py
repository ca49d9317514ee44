"""First response means the first human reply during the incident, over HTTP: PagerDuty (the sandbox's
signed stand-in) sends three incidents of one service to a shared team channel (SERVICE_CHANNELS); people,
Slackbot, a join and a message after resolution speak there; the KPIs are computed by hand.

The sandbox's clock is held still at the whole second the test starts (`at`), so every message's ts is that
instant (plus microseconds): the incidents' instants are set relative to it and each duration is exact.
It is taken when the test starts, not when the module is imported: the sandbox signs its requests with
that clock, and the bot refuses a signature over 5 minutes old (a full suite takes longer than that)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from bot.core.db import make_engine
from bot.core.models import Incident
from bot.devtools.sandbox.pagerduty_sender import FakeIncident, PagerDutySender
from bot.devtools.sandbox.sandbox import ManualClock
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack
from bot.loop.kpis import Kpis, compute_kpis
from tests.scenarios.conftest import ALICE, BOB, CAROL, assert_manifest_covers
from tests.scenarios.test_incident_channels import query


@pytest.fixture
def stack(database_url: str) -> Iterator[LocalStack]:
    running = LocalStack(database_url, service_channels="PPAY=#payments")
    running.sandbox.clock = ManualClock(float(int(time.time())))
    with running:
        yield running
        assert_manifest_covers(running.sandbox.calls)


def incident(stack: LocalStack, number: int) -> Incident:
    [row] = query(stack, select(Incident).where(Incident.number == number))
    return row


def card_ts(stack: LocalStack, channel: str, number: int) -> str:
    card = stack.sandbox.wait_for_message(channel, lambda m: m["text"].endswith(f": Payments issue {number}"))
    return str(card["ts"])


def test_first_responses_in_a_shared_channel_follow_the_thread_and_the_clock(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    at = datetime.fromtimestamp(sandbox.clock(), UTC)
    payments = sandbox.create_channel("payments", members=[ALICE, BOB, "U0BOT"])
    pagerduty = PagerDutySender(stack.bot_url, PAGERDUTY_SECRET)

    def trigger(number: int, minutes_ago: int) -> FakeIncident:
        fake = FakeIncident(
            number, f"Payments issue {number}", "PPAY", "payments", at - timedelta(minutes=minutes_ago)
        )
        assert pagerduty.send(fake, "incident.triggered", at=fake.created_at)[0] == 202
        return fake

    trigger(1, 30)  # the oldest: nobody replies under its card
    trigger(2, 10)
    resolved = trigger(3, 50)
    assert pagerduty.send(resolved, "incident.resolved", at=at - timedelta(minutes=40))[0] == 202
    cards = {number: card_ts(stack, payments, number) for number in (1, 2, 3)}

    # Not responses: Slackbot, a join, a reply to an incident already resolved.
    sandbox.slackbot_posts(payments, "Reminder: payments stand-up")
    sandbox.join(CAROL, payments)
    sandbox.post_message(ALICE, payments, "Looking at the old one again", thread_ts=cards[3])
    # Bob answers incident 2 under its card; Alice's top-level message goes to the oldest open one (1),
    # not to the newest (2, which has its answer already).
    sandbox.post_message(BOB, payments, "On it", thread_ts=cards[2])
    sandbox.post_message(ALICE, payments, "Checking the payment gateway")

    sandbox.wait_for(
        lambda: incident(stack, 1).first_response_at is not None, message="incident 1 unanswered"
    )
    first, second, third = incident(stack, 1), incident(stack, 2), incident(stack, 3)
    assert (first.first_responder, first.seconds_to_first_response) == (ALICE, 30 * 60)
    assert (second.first_responder, second.seconds_to_first_response) == (BOB, 10 * 60)
    assert (third.first_responder, third.seconds_to_first_response) == (None, None)

    # By hand: 3 incidents, 2 answered (1800 s and 600 s): mean 1200 s; within the 15-minute target: 1 of 3.
    kpis = query_kpis(stack, at)
    assert (kpis.incidents, kpis.responded, kpis.mean_seconds_to_first_response) == (3, 2, 1200)
    assert (kpis.within_target, kpis.within_target_share) == (1, pytest.approx(1 / 3))


def query_kpis(stack: LocalStack, at: datetime) -> Kpis:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            report = compute_kpis(
                session=session,
                since=at - timedelta(hours=1),
                until=at + timedelta(hours=1),
                response_target_minutes=15,
                tz=ZoneInfo("UTC"),
            )
    finally:
        engine.dispose()
    return report.overall
