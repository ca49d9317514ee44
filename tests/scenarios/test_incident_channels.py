"""An incident from PagerDuty to a published post-mortem, over real HTTP against the sandbox: the incident
channel, first response, timeline capture (:pushpin: and the message shortcut), Slack retries, the
write-up prompt, and action items marked done from the #postmortems summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from bot.core.db import make_engine
from bot.core.models import ActionItem, InboundDelivery, Incident, TimelineEntry
from bot.devtools.sandbox import SlackSandbox
from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action, Block, Callback
from tests.markdown import SLACK_MARKUP, outline, plain_text, raw_html
from tests.scenarios.conftest import ALICE, BOB, CAROL
from tests.scenarios.test_pagerduty_webhook import post, signed

CHANNEL = "inc-37-test"
FILLED = {
    Block.SUMMARY: {Action.INPUT: "The webhook tester fired a test incident"},
    Block.ROOT_CAUSE: {Action.INPUT: "A test alert with no threshold"},
    Block.RESOLUTION: {Action.INPUT: "Resolved it by hand"},
    Block.SEVERITY: {Action.SEVERITY_SELECT: "SEV4"},
    "action_text_0": {Action.INPUT: "Give the test alert a threshold"},
    "action_owner_0": {Action.OWNER_SELECT: ALICE},
}


@pytest.fixture
def stack(pagerduty_stack: LocalStack) -> LocalStack:
    return pagerduty_stack


def query(stack: LocalStack, statement):  # type: ignore[no-untyped-def]
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return list(session.exec(statement))
    finally:
        engine.dispose()


def triggered_channel(stack: LocalStack, *members: str) -> str:
    """Deliver incident.triggered; wait for its channel and card; add `members` to the channel."""
    assert post(stack, *signed("triggered"))[0] == 202
    sandbox = stack.sandbox
    channel = sandbox.wait_for(lambda: _channel(sandbox), message=f"no #{CHANNEL}")
    sandbox.wait_for_message(channel, lambda m: m["text"].startswith(":red_circle: Incident #37"))
    for member in members:
        sandbox.join(member, channel)
    return channel


def _channel(sandbox: SlackSandbox) -> str | None:
    try:
        return sandbox.channel_id(CHANNEL)
    except KeyError:
        return None


def summaries(sandbox: SlackSandbox) -> list[dict]:
    return [m for m in sandbox.messages("postmortems") if m["text"].startswith("Post-mortem published")]


def test_from_trigger_to_published_postmortem_with_timeline_and_done_items(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = triggered_channel(stack, ALICE, BOB)
    # As Slack sends it: typed `<b>` arrives escaped, a mention and a broadcast as markup.
    ts = sandbox.post_message(
        ALICE, channel, "Checkout pool is exhausted <!here>, raising it &lt;b&gt; <@U0BOB>"
    )
    sandbox.add_reaction(BOB, channel, ts, "pushpin")
    sandbox.wait_for(lambda: query(stack, select(TimelineEntry).where(TimelineEntry.kind == "message")))

    assert post(stack, *signed("resolved"))[0] == 202
    prompt = sandbox.wait_for_message(channel, lambda m: "resolved after 2 minutes" in m["text"])
    [incident] = query(stack, select(Incident))
    assert incident.first_responder == ALICE
    assert incident.first_response_at == datetime.fromtimestamp(float(ts), UTC)

    assert sandbox.click_button(BOB, channel, prompt["ts"], Action.OPEN_POSTMORTEM).status == 200
    view = sandbox.open_view_for(BOB)
    assert view is not None, "the prompt's button opened no modal"
    sandbox.fill_view(view["id"], FILLED)
    assert sandbox.submit_view(BOB, view["id"]).status == 200
    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem published"))
    rendered = json.dumps(summary["blocks"])
    assert "*Timeline*" in rendered
    # Escaped once (Slack did): the mention stays a mention, `<b>` reads as typed, the broadcast pings nobody.
    assert "Checkout pool is exhausted @here, raising it &lt;b&gt; <@U0BOB>" in rendered
    assert "<!here>" not in rendered and "&amp;" not in rendered
    assert "Triggered in PagerDuty: Test (Webhook Tester)" in rendered
    assert "Give the test alert a threshold" in rendered
    [document] = sandbox.wait_for(
        lambda: [f for f in sandbox.files.values() if f["name"].endswith(".md") and f["content"]]
    )
    markdown = document["content"].decode()
    # The document names people (users.info) and keeps their id in the link; no Slack markup is left.
    read = plain_text(markdown)
    assert "Timeline" in [text for _, text in outline(markdown)] and raw_html(markdown) == []
    assert "@alice: Checkout pool is exhausted @here, raising it <b> @bob" in read
    assert "/archives/" in markdown and f"(slack://user?team=T0SANDBOX&id={ALICE})" in markdown
    assert "Give the test alert a threshold (owner: @alice)" in read and SLACK_MARKUP.findall(read) == []

    # Alice owns it: /postmortem actions lists it. Carol is neither its owner nor in the incident channel:
    # refused, privately. Bob is in the incident channel: he may close it, and the one summary is updated.
    answer = sandbox.slash_command(ALICE, channel, text="actions").json
    assert "Give the test alert a threshold" in answer["text"] and "#37" in answer["text"]
    postmortems = sandbox.channel_id("postmortems")
    sandbox.click_button(CAROL, postmortems, summary["ts"], Action.MARK_ACTION_DONE)
    [refusal] = sandbox.ephemerals(postmortems, CAROL)
    assert "Only its owner <@U0ALICE>, someone in the incident's channel" in refusal["text"]
    assert query(stack, select(ActionItem))[0].status == "open"
    assert sandbox.click_button(BOB, postmortems, summary["ts"], Action.MARK_ACTION_DONE).status == 200
    sandbox.wait_for(
        lambda: ":white_check_mark: Give the test alert" in json.dumps(summaries(sandbox)[0]["blocks"])
    )
    assert len(summaries(sandbox)) == 1
    assert [c["args"]["ts"] for c in sandbox.calls_to("chat.update") if c["args"].get("ts") == summary["ts"]]
    done = json.dumps(summaries(sandbox)[0]["blocks"])
    assert Action.MARK_ACTION_DONE not in done  # the only item is done: no button left
    assert "no open action items" in sandbox.slash_command(ALICE, channel, text="actions").json["text"]
    [item] = query(stack, select(ActionItem))
    assert (item.status, item.completed_by) == ("done", BOB)


def test_shortcut_pushpin_and_slack_retries_capture_each_message_once(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = triggered_channel(stack, ALICE, BOB)  # their channel_join messages are not responses
    [incident] = query(stack, select(Incident))
    assert incident.first_response_at is None

    ts = sandbox.post_message(BOB, channel, "Rolled back deploy 1234")
    message_delivery = next(
        d for d in reversed(sandbox.deliveries) if d["payload"]["event"]["type"] == "message"
    )
    assert sandbox.redeliver(message_delivery, retry_num=1).status == 200
    assert sandbox.message_shortcut(ALICE, channel, ts, Callback.ADD_TO_TIMELINE).status == 200
    assert sandbox.wait_for(lambda: sandbox.ephemerals(channel, ALICE))[0]["text"].startswith(
        ":pushpin: Added to the timeline of incident #37"
    )
    pin = sandbox.add_reaction(ALICE, channel, ts, "pushpin")
    assert pin is not None and sandbox.redeliver(pin, retry_num=2, reason="http_error").status == 200
    sandbox.message_shortcut(BOB, channel, ts, Callback.ADD_TO_TIMELINE)
    assert sandbox.wait_for(lambda: sandbox.ephemerals(channel, BOB))[0]["text"].startswith(
        ":pushpin: Already on"
    )

    entries = query(stack, select(TimelineEntry).where(TimelineEntry.kind == "message"))
    assert [(e.text, e.author, e.occurred_at) for e in entries] == [
        ("Rolled back deploy 1234", f"<@{BOB}>", datetime.fromtimestamp(float(ts), UTC))
    ]
    assert entries[0].permalink and entries[0].permalink.endswith(
        f"/archives/{channel}/p{ts.replace('.', '')}"
    )
    archived = query(stack, select(InboundDelivery).where(InboundDelivery.source == "slack"))
    assert len(archived) == 2  # the message and the reaction, each once despite the retries
    # The retried reaction was not processed again: one history lookup (the shortcut carries the message).
    assert len(sandbox.calls_to("conversations.history")) == 1
    assert len(sandbox.calls_to("chat.getPermalink")) == 3  # two shortcuts and one pin
    [incident] = query(stack, select(Incident))
    assert incident.first_responder == BOB


def test_the_shortcut_outside_an_incident_channel_explains_itself(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = sandbox.create_channel("random", members=[ALICE, "U0BOT"])
    ts = sandbox.post_message(ALICE, channel, "lunch?")
    sandbox.message_shortcut(ALICE, channel, ts, Callback.ADD_TO_TIMELINE)
    [refusal] = sandbox.wait_for(lambda: sandbox.ephemerals(channel, ALICE))
    assert "isn't an incident channel" in refusal["text"]
    assert query(stack, select(TimelineEntry)) == []


def test_a_pin_whose_lookup_failed_is_captured_when_slack_retries(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = triggered_channel(stack, ALICE, BOB)
    ts = sandbox.post_message(BOB, channel, "Rolled back deploy 1234")
    sandbox.faults.fail_next("conversations.history", "server_error")
    pin = sandbox.add_reaction(ALICE, channel, ts, "pushpin")
    assert pin is not None and pin.status >= 500  # the listener failed: Slack will retry
    assert query(stack, select(TimelineEntry).where(TimelineEntry.kind == "message")) == []
    assert sandbox.redeliver(pin, retry_num=1, reason="http_error").status == 200
    entries = query(stack, select(TimelineEntry).where(TimelineEntry.kind == "message"))
    assert [e.text for e in entries] == ["Rolled back deploy 1234"]
