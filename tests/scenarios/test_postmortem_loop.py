"""The core loop over real HTTP: signed slash commands and interactions from the sandbox, the bot's
Web API calls back to it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

from sqlmodel import Session, select

from bot.core.db import make_engine
from bot.core.models import InboundDelivery, Incident, Postmortem, PostmortemRevision
from bot.devtools.sandbox import SlackSandbox, slack_signature
from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action, Block
from tests.scenarios.conftest import ALICE, BOB, declare

FILLED = {
    Block.SUMMARY: {Action.INPUT: "Checkout returned 500s for 20 minutes"},
    Block.IMPACT: {Action.INPUT: "12% of orders failed"},
    Block.ROOT_CAUSE: {Action.INPUT: "Pool exhausted <!channel> & <@U0CAROL> said so"},
    Block.RESOLUTION: {Action.INPUT: "Raised the pool to 50"},
    Block.SEVERITY: {Action.SEVERITY_SELECT: "SEV2"},
    Block.SERVICES: {Action.INPUT: "checkout"},
    "action_text_0": {Action.INPUT: "Alert on pool saturation"},
    "action_owner_0": {Action.OWNER_SELECT: ALICE},
}


def open_modal(sandbox: SlackSandbox, channel: str, user: str = BOB) -> str:
    delivery = sandbox.slash_command(user, channel)
    assert delivery.status == 200, delivery.body
    view = sandbox.open_view_for(user)
    assert view is not None, "no modal opened"
    return view["id"]


def summaries(sandbox: SlackSandbox) -> list[dict]:
    return [
        m for m in sandbox.messages(sandbox.channel_id("postmortems")) if "Post-mortem" in m.get("text", "")
    ]


def test_slash_command_opens_the_modal_before_the_trigger_expires(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox)
    open_modal(sandbox, channel)
    [call] = sandbox.calls_to("views.open")
    assert call["ok"], call  # the sandbox refuses an expired or reused trigger_id, as Slack does
    view = sandbox.open_view_for(BOB)
    assert view["title"]["text"] == "Post-mortem"


def test_missing_root_cause_gets_an_inline_error_and_keeps_what_was_typed(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox)
    view_id = open_modal(sandbox, channel)
    sandbox.fill_view(view_id, {**FILLED, Block.ROOT_CAUSE: {Action.INPUT: "   "}})
    delivery = sandbox.submit_view(BOB, view_id, client_validation=False)
    assert delivery.json["response_action"] == "errors"
    assert sandbox.view_errors[view_id] == {Block.ROOT_CAUSE: "Root cause is needed to publish."}
    assert sandbox.views[view_id]["state"]["values"][Block.SUMMARY][Action.INPUT]["value"].startswith(
        "Checkout"
    )
    assert summaries(sandbox) == []


def test_publish_posts_an_escaped_summary_then_republish_updates_it(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = declare(sandbox)
    sandbox.post_message(ALICE, channel, "Looking into it")
    view_id = open_modal(sandbox, channel)
    sandbox.fill_view(view_id, FILLED)
    assert sandbox.submit_view(BOB, view_id).status == 200
    assert view_id not in sandbox.views  # closed
    summary = sandbox.wait_for_message(
        sandbox.channel_id("postmortems"), lambda m: "Post-mortem" in m["text"]
    )
    rendered = json.dumps(summary["blocks"])
    assert "&lt;!channel&gt; &amp; &lt;@U0CAROL&gt;" in rendered
    assert "<!channel>" not in rendered and "<@U0CAROL>" not in rendered
    assert f"<#{channel}>" in rendered  # a link back to the incident channel
    sandbox.wait_for_message(channel, lambda m: "Post-mortem published" in m.get("text", ""))
    sandbox.wait_for(lambda: [f for f in sandbox.files.values() if f["name"].endswith(".md")])

    view_id = open_modal(sandbox, channel, user=ALICE)
    prefilled = sandbox.views[view_id]["state"]["values"]
    assert prefilled[Block.ROOT_CAUSE][Action.INPUT]["value"].startswith("Pool exhausted")
    sandbox.fill_view(view_id, {Block.SUMMARY: {Action.INPUT: "Edited summary"}})
    assert sandbox.submit_view(ALICE, view_id).status == 200
    sandbox.wait_for(lambda: sandbox.calls_to("chat.update"))
    sandbox.wait_for(lambda: "Edited summary" in json.dumps(summaries(sandbox)))
    assert len(summaries(sandbox)) == 1
    assert (
        len(
            [
                c
                for c in sandbox.calls_to("chat.postMessage")
                if c["args"].get("channel") == sandbox.channel_id("postmortems")
            ]
        )
        == 1
    )

    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
        postmortem = session.exec(select(Postmortem)).one()
        revisions = session.exec(select(PostmortemRevision).order_by(PostmortemRevision.number)).all()
    engine.dispose()
    assert incident.postmortem_published_at is not None and incident.first_responder == ALICE
    assert postmortem.status == "published" and postmortem.published_by == ALICE
    assert [(r.author_id, r.action, r.changed_fields) for r in revisions] == [
        (
            BOB,
            "publish",
            ["summary", "impact", "root_cause", "resolution", "severity", "services", "action_items"],
        ),
        (ALICE, "publish", ["summary"]),
    ]


def test_add_action_item_and_save_draft_keep_the_modal_open(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox)
    view_id = open_modal(sandbox, channel)
    sandbox.fill_view(
        view_id,
        {Block.SUMMARY: {Action.INPUT: "Half written"}, "action_text_0": {Action.INPUT: "First item"}},
    )
    sandbox.view_action(BOB, view_id, Action.ADD_ACTION_ITEM, block_id=Block.MODAL_ACTIONS)
    sandbox.wait_for(lambda: "action_text_1" in {b.get("block_id") for b in sandbox.views[view_id]["blocks"]})
    values = sandbox.views[view_id]["state"]["values"]
    assert values["action_text_0"][Action.INPUT]["value"] == "First item"
    sandbox.view_action(BOB, view_id, Action.SAVE_DRAFT, block_id=Block.MODAL_ACTIONS)
    sandbox.wait_for(lambda: "Draft saved" in json.dumps(sandbox.views[view_id]["blocks"]))
    assert summaries(sandbox) == []


def test_commands_outside_an_incident_and_unknown_input(sandbox: SlackSandbox) -> None:
    lobby = sandbox.create_channel("lobby", members=[BOB, "U0BOT"])
    delivery = sandbox.slash_command(BOB, lobby)
    assert (
        "isn't linked to an incident" in delivery.json["text"] and "/postmortem new" in delivery.json["text"]
    )
    assert sandbox.calls_to("views.open") == []
    for text in ("help", "frobnicate <!channel>", "NEW"):
        answer = sandbox.slash_command(BOB, lobby, text=text).json["text"]
        assert "How to use" in answer or "Give the incident a title" in answer
        assert "<!channel>" not in answer
    declare(sandbox)
    listing = sandbox.slash_command(BOB, lobby, text="list").json["text"]
    assert "Checkout is down" in listing and "post-mortem not started" in listing


def test_declaring_twice_in_one_channel_is_refused(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox)
    answer = sandbox.slash_command(BOB, channel, text="new Again").json["text"]
    assert "already belongs to incident" in answer


def test_bad_or_stale_signature_is_refused_and_nothing_is_stored(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = sandbox.create_channel("inc-x", members=[BOB, "U0BOT"])
    body = (
        f"command=%2Fpostmortem&text=new+Forged&user_id={BOB}&channel_id={channel}&trigger_id=1.2.3".encode()
    )
    now = int(time.time())
    form = "application/x-www-form-urlencoded"
    forged = sandbox.deliver_raw(
        body,
        content_type=form,
        headers={"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64},
    )
    stale_ts = str(now - 10 * 60)
    stale = sandbox.deliver_raw(
        body,
        content_type=form,
        headers={
            "X-Slack-Request-Timestamp": stale_ts,
            "X-Slack-Signature": slack_signature(sandbox.signing_secret, stale_ts, body),
        },
    )
    unsigned = sandbox.deliver_raw(body, content_type=form, sign=False)
    garbage = b"{not json"
    garbage_unsigned = sandbox.deliver_raw(garbage, sign=False)
    garbage_signed = sandbox.deliver_raw(
        garbage,
        headers={
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": slack_signature(sandbox.signing_secret, str(now), garbage),
        },
    )
    assert (forged.status, stale.status, unsigned.status) == (401, 401, 401)
    assert (garbage_unsigned.status, garbage_signed.status) == (401, 400)
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        assert session.exec(select(Incident)).all() == []
        assert session.exec(select(InboundDelivery)).all() == []
    engine.dispose()


def test_resolve_records_the_instant_and_prefills_resolution_time(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox)
    answer = sandbox.slash_command(BOB, channel, text="resolve").json["text"]
    assert "resolved after" in answer
    prompt = sandbox.wait_for_message(
        channel, lambda m: Action.OPEN_POSTMORTEM in json.dumps(m.get("blocks"))
    )
    assert sandbox.click_button(ALICE, channel, prompt["ts"], Action.OPEN_POSTMORTEM).status == 200
    assert sandbox.open_view_for(ALICE) is not None
    view_id = open_modal(sandbox, channel)
    minutes = sandbox.views[view_id]["state"]["values"][Block.RESOLUTION_MINUTES][Action.INPUT]["value"]
    assert minutes == "0"


def publish(sandbox: SlackSandbox, channel: str, user: str, values: dict) -> None:
    view_id = open_modal(sandbox, channel, user=user)
    sandbox.fill_view(view_id, values)
    assert sandbox.submit_view(user, view_id).status == 200


def test_history_and_restore_bring_back_an_earlier_summary(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox)
    assert "no saved post-mortem" in sandbox.slash_command(BOB, channel, text="history").json["text"]
    publish(sandbox, channel, BOB, FILLED)
    publish(sandbox, channel, ALICE, {Block.SUMMARY: {Action.INPUT: "A worse summary"}})
    sandbox.wait_for(lambda: "A worse summary" in json.dumps(summaries(sandbox)))
    history = sandbox.slash_command(BOB, channel, text="history").json["text"]
    assert "*1*" in history and f"<@{BOB}> publish" in history and f"<@{ALICE}> publish: summary" in history
    assert "Say which revision" in sandbox.slash_command(BOB, channel, text="restore").json["text"]
    answer = sandbox.slash_command(BOB, channel, text="restore 1").json["text"]
    assert "Restored revision 1 as revision 3" in answer
    sandbox.wait_for(lambda: "Checkout returned 500s for 20 minutes" in json.dumps(summaries(sandbox)))
    assert len(summaries(sandbox)) == 1
    # The restored revision's document is posted in the incident card's thread, as a publish posts its own.
    # The file is listed once its upload URL is asked for, and has content only once the upload completes.
    [document] = sandbox.wait_for(
        lambda: [f for f in sandbox.files.values() if f["name"].endswith("-r3.md") and f["content"]]
    )
    assert "Checkout returned 500s for 20 minutes" in document["content"].decode()
    assert "A worse summary" not in document["content"].decode()
