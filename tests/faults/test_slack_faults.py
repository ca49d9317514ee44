"""Slack failing 30% of calls (429, 5xx, time-outs, and time-outs after the call took effect) while
incidents flow: declared with `/postmortem new`, talked about, published, and opened by PagerDuty.
Afterwards every message the bot owed is in its channel exactly once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from bot.core.db import make_engine
from bot.core.models import InboundDelivery, Incident, Postmortem
from bot.devtools.sandbox import SlackSandbox
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack
from bot.slack.blocks import Action, Block
from tests.faults.ledger import Figures, count_messages, outbox_settled, pagerduty_body, post_pagerduty
from tests.scenarios.conftest import ALICE, BOB, CAROL

pytestmark = pytest.mark.faults

FAULTS = ("ratelimited", "server_error", "timeout", "applied_timeout")
# Fast retries and short client time-outs, so a scenario of ~100 failures settles in seconds.
FAST = {"slack_api_timeout_seconds": 0.5, "outbox_max_backoff_seconds": 1.0, "outbox_claim_seconds": 5}
DECLARED, PAGED = 5, 4


@pytest.fixture
def stack(tmp_path) -> Iterator[LocalStack]:  # type: ignore[no-untyped-def]
    with LocalStack(f"sqlite:///{tmp_path / 'faults.db'}", **FAST) as running:
        running.sandbox.ack_timeout = 10.0
        yield running


class Person:
    """Someone at the keyboard: when Slack or the bot shows an error, they try again (at most 10 times)."""

    def __init__(self, sandbox: SlackSandbox, figures: Figures) -> None:
        self.sandbox = sandbox
        self.figures = figures

    def command(self, user: str, channel: str, text: str, success: str) -> bool:
        for _ in range(10):
            self.figures.sent += 1
            answer = self.sandbox.slash_command(user, channel, text=text)
            if answer.ok and success in ((answer.json or {}).get("text") or answer.body):
                self.figures.acknowledged += 1
                return True
            if "already belongs to incident" in answer.body:  # an earlier try went through after all
                return True
        return False

    def publish(self, user: str, channel: str, values: dict[str, Any]) -> bool:
        for _ in range(10):
            view = self.sandbox.open_view_for(user)
            if view is None:
                self.figures.sent += 1
                self.sandbox.slash_command(user, channel)
                view = self.sandbox.open_view_for(user)
            if view is None:
                continue
            self.sandbox.fill_view(view["id"], values)
            self.figures.sent += 1
            delivery = self.sandbox.submit_view(user, view["id"])
            if delivery.ok and self.sandbox.open_view_for(user) is None:
                self.figures.acknowledged += 1
                return True
            for stacked in self.sandbox.views:  # an error view was pushed: close the stack, start again
                if self.sandbox.view_owner(stacked) == user:
                    self.sandbox.close_view(user, stacked)
        return False


def filled(n: int) -> dict[str, Any]:
    return {
        Block.SUMMARY: {Action.INPUT: f"Incident {n}: checkout returned 500s"},
        Block.ROOT_CAUSE: {Action.INPUT: "Pool exhausted"},
        Block.RESOLUTION: {Action.INPUT: "Raised the pool"},
        Block.SEVERITY: {Action.SEVERITY_SELECT: "SEV2"},
        "action_text_0": {Action.INPUT: "Alert on pool saturation"},
        "action_owner_0": {Action.OWNER_SELECT: ALICE},
    }


def test_slack_failing_30_percent_of_calls_loses_and_duplicates_nothing(stack: LocalStack) -> None:
    sandbox, figures = stack.sandbox, Figures()
    person = Person(sandbox, figures)
    channels = [
        sandbox.create_channel(f"inc-fault-{n}", members=[ALICE, BOB, CAROL, "U0BOT"])
        for n in range(DECLARED)
    ]
    sandbox.faults.fail_rate(0.3, kinds=FAULTS, retry_after=1, timeout_seconds=0.8, seed=5)

    declared = published = webhooks = 0
    for n, channel in enumerate(channels):
        declared += person.command(BOB, channel, f"new Checkout down {n}", "Declared incident")
        sandbox.post_message(ALICE, channel, "Looking into it")
        figures.sent += 1
        figures.acknowledged += 1  # Events API deliveries are acked before any Slack call
    for n in range(PAGED):
        for kind, minutes in (("triggered", 0), ("acknowledged", 3), ("resolved", 20)):
            body = pagerduty_body(f"QFAULT{n:03d}", 900 + n, kind, minutes=minutes)
            for _ in range(10):  # PagerDuty retries anything but a 2xx
                figures.sent += 1
                if 200 <= post_pagerduty(stack.bot_url, body, PAGERDUTY_SECRET) < 300:
                    figures.acknowledged += 1
                    webhooks += 1
                    break
    for n, channel in enumerate(channels):
        published += person.publish(BOB, channel, filled(n))

    with contextlib.suppress(TimeoutError):  # faults stay on a while longer, as the outbox works through them
        sandbox.wait_for(lambda: outbox_settled(stack.database_url), timeout=8)
    sandbox.faults.clear()
    sandbox.wait_for(
        lambda: outbox_settled(stack.database_url), timeout=60, message="deliveries or outbox never settled"
    )

    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        declared_rows = session.exec(select(Incident).where(col(Incident.declared_by).is_not(None))).all()
        paged = session.exec(
            select(func.count()).select_from(Incident).where(col(Incident.pagerduty_id).is_not(None))
        ).one()
        postmortems = session.exec(
            select(func.count()).select_from(Postmortem).where(Postmortem.status == "published")
        ).one()
        deliveries = session.exec(
            select(func.count()).select_from(InboundDelivery).where(InboundDelivery.source == "pagerduty")
        ).one()
    engine.dispose()
    assert (declared, published, webhooks, paged) == (DECLARED, DECLARED, PAGED * 3, PAGED)
    responded = sum(1 for incident in declared_rows if incident.first_response_at is not None)
    # Each acknowledged request's effect: a declared incident, a first response, an archived delivery,
    # a published post-mortem.
    figures.stored = len(declared_rows) + responded + deliveries + postmortems
    figures.lost += figures.acknowledged - figures.stored
    count_messages(sandbox, stack.database_url, figures)
    faulted = [c for c in sandbox.calls if c["error"] in ("ratelimited", "internal_error", "timeout")]
    assert len(faulted) >= 15, f"the faults did not bite ({len(faulted)})"
    figures.report("slack 30% failing")
