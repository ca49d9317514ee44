"""A reopened incident, over HTTP: signed PagerDuty deliveries and signed Slack commands, interactions
and events against the bot serving the Slack sandbox. Its one prompt message follows it whatever the
order of the deliveries, its nudges pause while it lives, and a post-mortem published before the reopen
is flagged for review everywhere people look (the card, the summary in #postmortems, `/postmortem list`,
App Home) until it is published again after the final resolution."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core.db import make_engine
from bot.core.models import Incident, Postmortem, PostmortemRevision
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack
from bot.domain.pagerduty import sign
from bot.loop.reminders import send_nudges
from bot.slack.blocks import Action, Block
from tests.scenarios.conftest import ALICE
from tests.scenarios.test_pagerduty_lifecycle import CHANNEL, bot_messages, fixture, prompts, send
from tests.scenarios.test_pagerduty_webhook import post
from tests.scenarios.test_postmortem_loop import FILLED, publish, summaries

REVIEW = "needs a review"
REOPENED_AT = datetime(2026, 11, 23, 13, 30, tzinfo=UTC)  # incident.reopened.json's occurred_at


@pytest.fixture
def stack(database_url: str) -> Any:
    with LocalStack(database_url, incident_channel_prefix="inc-") as running:
        yield running


def records(stack: LocalStack) -> tuple[Incident, Postmortem, list[PostmortemRevision]]:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            incident = session.exec(select(Incident).where(Incident.pagerduty_id == "PLIFE01")).one()
            postmortem = session.exec(select(Postmortem).where(Postmortem.incident_id == incident.id)).one()
            revisions = list(
                session.exec(
                    select(PostmortemRevision).where(PostmortemRevision.postmortem_id == postmortem.id)
                )
            )
            session.expunge_all()
            return incident, postmortem, revisions
    finally:
        engine.dispose()


def card(stack: LocalStack) -> str:
    [found] = [
        m for m in bot_messages(stack, CHANNEL) if (m.get("blocks") or [{}])[0].get("type") == "header"
    ]
    return json.dumps(found["blocks"])


def summary(stack: LocalStack) -> str:
    [found] = summaries(stack.sandbox)
    return json.dumps(found["blocks"]) + found["text"]


def listing(stack: LocalStack, channel: str) -> str:
    return str(stack.sandbox.slash_command(ALICE, channel, text="list").json["text"])


def home(stack: LocalStack) -> str:
    assert stack.sandbox.open_app_home(ALICE).status == 200
    return json.dumps(stack.sandbox.app_home(ALICE))


def test_a_reopen_flags_the_published_postmortem_everywhere_and_the_next_publish_clears_it(
    stack: LocalStack,
) -> None:
    sandbox = stack.sandbox
    send(stack, "incident.triggered")
    send(stack, "incident.resolved")
    sandbox.wait_for(lambda: prompts(stack, CHANNEL), message="no prompt")
    channel = sandbox.channel_id(CHANNEL)
    sandbox.join(ALICE, channel)
    publish(sandbox, channel, ALICE, FILLED)
    sandbox.wait_for(lambda: summaries(sandbox), message="no summary in #postmortems")
    published_ts = summaries(sandbox)[0]["ts"]
    assert REVIEW not in summary(stack) and REVIEW not in card(stack)
    assert "post-mortem published" in listing(stack, channel)
    assert REVIEW not in home(stack)

    send(stack, "incident.reopened")
    incident, postmortem, _ = records(stack)
    assert postmortem.needs_review_since == REOPENED_AT
    # Its documentation is no longer current: no documentation latency until it is published again.
    assert (incident.postmortem_published_at, incident.seconds_to_document) == (None, None)
    sandbox.wait_for(lambda: REVIEW in card(stack), message="the card does not show the review")
    sandbox.wait_for(lambda: REVIEW in summary(stack), message="the summary does not show the review")
    assert summaries(sandbox)[0]["ts"] == published_ts  # updated in place
    assert "post-mortem published, needs a review" in listing(stack, channel)
    assert "published, needs a review" in home(stack)

    send(stack, "incident.resolved.final")
    publish(sandbox, channel, ALICE, {Block.SUMMARY: {Action.INPUT: "Checkout was slow, twice"}})
    sandbox.wait_for(lambda: REVIEW not in summary(stack), message="the summary still asks for a review")
    sandbox.wait_for(lambda: REVIEW not in card(stack), message="the card still asks for a review")
    incident, postmortem, revisions = records(stack)
    republished = max(r.created_at for r in revisions)
    assert postmortem.needs_review_since is None
    assert incident.postmortem_published_at == republished
    # The documentation latency counts from the final resolution to the publication after the review.
    assert incident.resolved_at is not None
    assert incident.seconds_to_document == int((republished - incident.resolved_at).total_seconds())
    assert "post-mortem published" in listing(stack, channel) and REVIEW not in listing(stack, channel)
    assert REVIEW not in home(stack)
    assert len(summaries(sandbox)) == 1


def prompt_messages(stack: LocalStack) -> list[dict[str, Any]]:
    return [
        m
        for m in bot_messages(stack, CHANNEL)
        if "resolved after" in m["text"] or "was reopened in PagerDuty" in m["text"]
    ]


def test_the_one_prompt_follows_deliveries_out_of_order_and_repeated(stack: LocalStack) -> None:
    send(stack, "incident.triggered")
    send(stack, "incident.resolved")  # 13:20
    stack.sandbox.wait_for(lambda: prompts(stack, CHANNEL), message="no prompt")
    [first] = prompt_messages(stack)
    send(stack, "incident.resolved.final")  # 14:30, delivered before the 13:30 reopen it follows
    send(stack, "incident.reopened")
    stack.sandbox.wait_for(
        lambda: "after 90 minutes" in prompt_messages(stack)[0]["text"],
        message=f"the prompt does not say the final resolution: {prompt_messages(stack)}",
    )
    for name in ("incident.reopened", "incident.resolved"):  # PagerDuty retries them: nothing changes
        body = json.dumps(fixture(name)).encode()
        assert post(stack, body, sign(body, PAGERDUTY_SECRET))[0] == 200  # a duplicate, stored once
    send(stack, "incident.acknowledged")  # late and older: changes nothing either
    [prompt] = prompt_messages(stack)
    assert prompt["ts"] == first["ts"] and "Write the post-mortem" in json.dumps(prompt["blocks"])
    posted = [c for c in stack.sandbox.calls_to("chat.postMessage") if c["ok"]]
    assert len([c for c in posted if "resolved after" in c["args"].get("text", "")]) == 1


def test_nudges_pause_while_a_reopened_incident_lives_and_count_from_its_final_resolution(
    stack: LocalStack,
) -> None:
    settings = stack.settings()
    send(stack, "incident.triggered")
    send(stack, "incident.resolved")  # Monday 13:20
    # The nudge goes to the incident's channel (it has no owner): wait until the outbox opened it.
    stack.sandbox.wait_for(lambda: prompts(stack, CHANNEL), message="no channel and prompt")
    engine = make_engine(stack.database_url)
    tuesday = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # over 24 h after it, in working hours
    try:
        with Session(engine) as session:
            assert send_nudges(session=session, settings=settings, now=tuesday) == 1
            session.rollback()  # only asked: the incident is owed a nudge while resolved
        send(stack, "incident.reopened")
        with Session(engine) as session:
            assert send_nudges(session=session, settings=settings, now=tuesday) == 0
        send(stack, "incident.resolved.final")  # Monday 14:30: nudged 24 h after it, not before
        with Session(engine) as session:
            assert send_nudges(session=session, settings=settings, now=tuesday) == 0
            assert send_nudges(session=session, settings=settings, now=tuesday.replace(hour=15)) == 1
    finally:
        engine.dispose()


def test_a_reopen_delivered_after_the_final_resolution_still_flags_the_published_postmortem(
    stack: LocalStack,
) -> None:
    sandbox = stack.sandbox
    send(stack, "incident.triggered")
    send(stack, "incident.resolved")
    sandbox.wait_for(lambda: prompts(stack, CHANNEL), message="no prompt")
    channel = sandbox.channel_id(CHANNEL)
    sandbox.join(ALICE, channel)
    publish(sandbox, channel, ALICE, FILLED)  # written against the 20-minute resolution
    sandbox.wait_for(lambda: summaries(sandbox), message="no summary in #postmortems")
    send(stack, "incident.resolved.final")
    send(stack, "incident.reopened")  # it happened before the final resolution, and arrives after it
    incident, postmortem, _ = records(stack)
    assert (incident.status, incident.seconds_to_resolve) == ("resolved", 90 * 60)
    assert postmortem.needs_review_since == REOPENED_AT
    sandbox.wait_for(lambda: REVIEW in summary(stack), message="the summary does not show the review")
    sandbox.wait_for(lambda: REVIEW in card(stack), message="the card does not show the review")
