"""Channels changing under the bot, over HTTP against the sandbox (strict as Slack: archived channels keep
their names and refuse posts, a bot that is not a member cannot post, conversions and removals arrive as
events): privacy follows the channel, posts to an archived channel reach people elsewhere, and a bot
removed from a channel stays out."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from bot.core.clock import utcnow
from bot.core.db import make_engine
from bot.core.models import Incident, OutboxMessage, OutboxStatus, SlackChannel
from bot.devtools.sandbox import BOT_USER
from bot.devtools.stack import LocalStack
from bot.flows.channel_life import refresh_privacy
from bot.runtime.scheduler import JobRunner, build_jobs
from bot.slack.blocks import Action, Block
from tests.scenarios.conftest import ALICE, BOB
from tests.scenarios.test_concurrent_edits import open_modal, resolved_incident
from tests.scenarios.test_incident_channels import FILLED, query, summaries


@pytest.fixture
def stack(pagerduty_stack: LocalStack) -> LocalStack:
    return pagerduty_stack


def publish(stack: LocalStack, user: str, channel: str, prompt_ts: str, values: dict | None = None) -> None:
    view = open_modal(stack, user, channel, prompt_ts)
    stack.sandbox.fill_view(view["id"], values or FILLED)
    delivery = stack.sandbox.submit_view(user, view["id"])
    assert delivery.status == 200 and delivery.error is None, delivery.body
    assert view["id"] not in stack.sandbox.view_errors


def incident(stack: LocalStack) -> Incident:
    [row] = query(stack, select(Incident))
    return row


def settled(stack: LocalStack) -> bool:
    """Every outbox row sent (none pending, none parked)."""
    return all(row.status == OutboxStatus.SENT for row in query(stack, select(OutboxMessage)))


def parked(stack: LocalStack) -> list[OutboxMessage]:
    return [row for row in query(stack, select(OutboxMessage)) if row.status == OutboxStatus.PARKED]


def test_a_channel_made_private_mid_incident_publishes_nothing_public(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    assert not incident(stack).channel_is_private

    sandbox.convert_to_private(ALICE, channel)  # Slack's channel_convert_to_private message
    sandbox.wait_for(lambda: incident(stack).channel_is_private, message="the conversion was not followed")
    publish(stack, BOB, channel, prompt_ts)
    sandbox.wait_for(lambda: settled(stack), message="the publication was not delivered")
    assert summaries(sandbox) == []
    assert "A test alert with no threshold" not in str(sandbox.messages("postmortems", "all"))
    # The document still reaches the incident's own (now private) channel.
    assert any(m["files"] for m in sandbox.messages(channel, "all"))


def test_a_conversion_the_bot_missed_is_caught_by_conversations_info_before_publishing(
    stack: LocalStack,
) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    with sandbox._lock:  # made private while its event was lost: only conversations.info can tell
        sandbox._channels[channel].is_private = True
    publish(stack, BOB, channel, prompt_ts)
    sandbox.wait_for(lambda: settled(stack), message="the publication was not delivered")
    assert summaries(sandbox) == []
    assert incident(stack).channel_is_private
    assert sandbox.calls_to("conversations.info")


def test_a_published_summary_is_withdrawn_when_its_channel_becomes_private(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    publish(stack, BOB, channel, prompt_ts)
    [summary] = [sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem"))]

    sandbox.convert_to_private(ALICE, channel)
    sandbox.wait_for(
        lambda: "withdrawn" in sandbox.messages("postmortems")[-1]["text"],
        message="the summary stayed public",
    )
    [after] = [m for m in sandbox.messages("postmortems") if m["ts"] == summary["ts"]]
    assert "A test alert with no threshold" not in str(after)


def test_an_archived_public_incident_channel_gets_its_document_in_the_summary_thread(
    stack: LocalStack,
) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    publish(stack, BOB, channel, prompt_ts)
    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem published"))
    sandbox.wait_for(lambda: settled(stack), message="the first publication was not delivered")

    sandbox.archive_channel(ALICE, channel)
    sandbox.wait_for(
        lambda: any(c.is_archived for c in query(stack, select(SlackChannel))), message="archive not followed"
    )
    assert sandbox.channel_id("inc-37-test") == channel  # an archived channel keeps its name
    publish(stack, BOB, channel, prompt_ts, {Block.ROOT_CAUSE: {Action.INPUT: "A threshold of zero"}})
    sandbox.wait_for(lambda: settled(stack), message="the update was not delivered")

    thread = sandbox.messages("postmortems", summary["ts"])
    assert any("updated (revision 2)" in m["text"] for m in thread)
    assert any(f["name"].endswith("-r2.md") for m in thread for f in m["files"])
    assert parked(stack) == []


def test_an_archive_the_bot_missed_is_rerouted_when_slack_refuses_the_post(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    view = open_modal(stack, ALICE, channel, prompt_ts)
    sandbox.fill_view(view["id"], FILLED)
    with sandbox._lock:  # archived while its event was lost: Slack answers the post with is_archived
        sandbox._channels[channel].is_archived = True
    assert sandbox.submit_view(ALICE, view["id"]).status == 200
    sandbox.wait_for(lambda: settled(stack), message="the rerouted posts were not delivered")

    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem published"))
    thread = sandbox.messages("postmortems", summary["ts"])
    assert any("Post-mortem published by <@U0ALICE>" in m["text"] for m in thread)
    assert any(m["files"] for m in thread)
    assert parked(stack) == []
    assert [c.id for c in query(stack, select(SlackChannel)) if c.is_archived] == [channel]


def test_a_private_incident_in_an_archived_channel_reaches_the_publisher_by_dm(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    sandbox.convert_to_private(ALICE, channel)
    sandbox.wait_for(lambda: incident(stack).channel_is_private, message="the conversion was not followed")
    sandbox.archive_channel(ALICE, channel)
    sandbox.wait_for(
        lambda: any(c.is_archived for c in query(stack, select(SlackChannel))), message="archive not followed"
    )
    publish(stack, BOB, channel, prompt_ts)
    sandbox.wait_for(lambda: settled(stack), message="the publication was not delivered")

    dm = sandbox.direct_messages(BOB)
    assert any("Post-mortem published by <@U0BOB>" in m["text"] for m in dm)
    assert any(m["files"] for m in dm)
    assert summaries(sandbox) == []
    assert parked(stack) == []


def test_a_removed_bot_stays_out_and_says_once_where_it_posts_instead(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    sandbox.remove_bot(ALICE, channel)
    told = sandbox.wait_for(lambda: sandbox.direct_messages(ALICE), message="alice was not told")
    assert len(told) == 1 and "will not rejoin" in told[0]["text"] and "#postmortems" in told[0]["text"]
    joins_before = len(sandbox.calls_to("conversations.join"))

    # Publishing needs the prompt's button, which alice can still click in the channel.
    publish(stack, BOB, channel, prompt_ts)
    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem published"))
    sandbox.wait_for(lambda: settled(stack), message="the publication was not delivered")
    assert BOT_USER.id not in sandbox.members(channel)
    assert [
        c
        for c in sandbox.calls_to("conversations.join")[joins_before:]
        if c["args"].get("channel") == channel
    ] == []
    thread = sandbox.messages("postmortems", summary["ts"])
    assert any(m["files"] for m in thread)
    assert len(sandbox.direct_messages(ALICE)) == 1  # said once
    assert parked(stack) == []


def test_a_post_owed_before_the_bot_was_removed_goes_elsewhere_without_rejoining(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    # Slack rate-limits the summary and the confirmation for an hour: both are still owed when the bot is
    # removed (once the document is in the channel); the test then makes them due (no waiting on a clock).
    sandbox.faults.fail_next("chat.postMessage", "ratelimited", count=2, retry_after=3600)
    publish(stack, BOB, channel, prompt_ts)

    def held() -> bool:
        rows = {row.key.split(":")[0]: row for row in query(stack, select(OutboxMessage))}
        limited = [k for k in ("summary", "published") if "ratelimited" in (rows[k].last_error or "")]
        return len(limited) == 2 and rows["document"].status == OutboxStatus.SENT

    sandbox.wait_for(held, message="the two posts were not held, or the document not delivered")
    sandbox.remove_bot(ALICE, channel)
    sandbox.wait_for(
        lambda: any(c.bot_removed for c in query(stack, select(SlackChannel))), message="removal not followed"
    )
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
            session.commit()
    finally:
        engine.dispose()

    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem published"))
    sandbox.wait_for(lambda: settled(stack), message="the owed posts were not delivered")
    assert BOT_USER.id not in sandbox.members(channel)
    thread = sandbox.messages("postmortems", summary["ts"])
    assert any("Post-mortem published by <@U0BOB>" in m["text"] for m in thread)
    assert parked(stack) == []


def test_renames_unarchives_deletions_and_an_invitation_back_are_followed(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, _ = resolved_incident(stack)

    def state() -> SlackChannel | None:
        return next(iter(query(stack, select(SlackChannel))), None)

    sandbox.rename_channel(ALICE, channel, "inc-37-webhook-test")
    sandbox.wait_for(
        lambda: incident(stack).channel_name == "inc-37-webhook-test", message="rename not followed"
    )

    sandbox.archive_channel(ALICE, channel)
    sandbox.wait_for(lambda: (s := state()) is not None and s.is_archived, message="archive not followed")
    sandbox.unarchive_channel(ALICE, channel)
    sandbox.wait_for(lambda: not state().is_archived, message="unarchive not followed")  # type: ignore[union-attr]

    sandbox.remove_bot(ALICE, channel)
    sandbox.wait_for(lambda: state().bot_removed, message="removal not followed")  # type: ignore[union-attr]
    sandbox.join(BOT_USER.id, channel)  # a person invites it back: its own member_joined_channel
    sandbox.wait_for(lambda: not state().bot_removed, message="the invitation was not followed")  # type: ignore[union-attr]

    sandbox.delete_channel(ALICE, channel)
    sandbox.wait_for(lambda: state().is_deleted, message="deletion not followed")  # type: ignore[union-attr]


def test_a_conversion_the_bot_missed_is_caught_before_a_public_job_posts(stack: LocalStack) -> None:
    """The scheduled public jobs ask Slack first (refresh_privacy): the published summary is withdrawn,
    though no event said the channel was converted."""
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    publish(stack, BOB, channel, prompt_ts)
    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem"))
    with sandbox._lock:  # made private while its event was lost: only conversations.info can tell
        sandbox._channels[channel].is_private = True
    assert stack.server is not None and stack.server.runtime is not None
    runtime = stack.server.runtime
    runner = JobRunner(
        engine=runtime.engine,
        settings=runtime.settings,
        jobs=build_jobs(runtime.settings),
        before_public=lambda at: refresh_privacy(runtime, at=at),
    )
    assert runner.run_due("wins_and_alerts", utcnow()) is not None  # a public sweep, due every 15 minutes
    assert incident(stack).channel_is_private
    sandbox.wait_for(
        lambda: (
            "withdrawn"
            in next(m for m in sandbox.messages("postmortems") if m["ts"] == summary["ts"])["text"]
        ),
        message="the summary stayed public",
    )
    [after] = [m for m in sandbox.messages("postmortems") if m["ts"] == summary["ts"]]
    assert "A test alert with no threshold" not in str(after)
