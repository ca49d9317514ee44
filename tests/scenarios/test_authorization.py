"""Authorization over HTTP: only the incident channel's members and POSTMORTEM_ADMINS may open, save,
publish or restore a post-mortem; anyone else sees a refusal and nothing is stored.

The sandbox will not let a non-member type a command or click in a channel (neither does Slack's client),
so those gestures are sent signed as Slack would (`command_as`, `click_as`): the bot must not rely on it."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import pytest
from sqlmodel import Session, func, select

from bot.core.db import make_engine
from bot.core.models import Incident, Postmortem, PostmortemRevision
from bot.devtools.sandbox import Delivery, SlackSandbox
from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action, Block, Callback
from tests.scenarios.conftest import ALICE, BOB, CAROL, assert_manifest_covers
from tests.scenarios.test_postmortem_loop import FILLED, open_modal, summaries

BOT = "U0BOT"


@pytest.fixture
def admin_stack(database_url: str) -> Iterator[LocalStack]:
    with LocalStack(database_url, postmortem_admins=[CAROL]) as running:
        yield running
        assert_manifest_covers(running.sandbox.calls)


def click_as(sandbox: SlackSandbox, user: str, click: dict) -> Delivery:
    """A button click on a channel message (`click`: channel, ts, action_id, value) from `user`, signed
    with the app's signing secret and carrying a live trigger_id (so the bot's answer can open a modal)."""
    trigger = sandbox._new_trigger(user)
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0SANDBOX"},
        "api_app_id": "A0SANDBOX",
        "team": {"id": "T0SANDBOX"},
        "container": {"type": "message", "message_ts": click["ts"], "channel_id": click["channel"]},
        "channel": {"id": click["channel"]},
        "trigger_id": trigger,
        "actions": [
            {
                "type": "button",
                "action_id": click["action_id"],
                "value": click["value"],
                "block_id": Block.RESOLVE_PROMPT,
                "action_ts": "1",
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return sandbox.deliver_raw(body, content_type="application/x-www-form-urlencoded")


def command_as(sandbox: SlackSandbox, user: str, channel: str, text: str = "") -> Delivery:
    payload = {
        "team_id": "T0SANDBOX",
        "channel_id": channel,
        "user_id": user,
        "command": "/postmortem",
        "text": text,
        "api_app_id": "A0SANDBOX",
        "trigger_id": sandbox._new_trigger(user),
        "response_url": f"{sandbox.url}/response/none",
    }
    body = urllib.parse.urlencode(payload).encode()
    return sandbox.deliver_raw(body, content_type="application/x-www-form-urlencoded")


def stored(stack: LocalStack) -> tuple[int, str | None, str | None]:
    """(revisions, post-mortem owner, status)."""
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        revisions = session.exec(select(func.count()).select_from(PostmortemRevision)).one()
        postmortem = session.exec(select(Postmortem)).first()
    engine.dispose()
    return revisions, postmortem.owner_id if postmortem else None, postmortem.status if postmortem else None


def incident_id(stack: LocalStack) -> int:
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        found = session.exec(select(Incident)).one().id
    engine.dispose()
    return found


def postmortem_modals_opened_for(sandbox: SlackSandbox, user: str) -> int:
    return len(
        [
            v
            for v in sandbox.views.values()
            if v.get("callback_id") == Callback.POSTMORTEM_MODAL and sandbox.view_owner(v["id"]) == user
        ]
    )


def incident_channel(sandbox: SlackSandbox) -> str:
    """An incident channel with alice and bob (not carol), resolved, with its write-up prompt."""
    channel = sandbox.create_channel("inc-payments", members=[ALICE, BOB, BOT])
    assert sandbox.slash_command(BOB, channel, text="new Payments are slow").status == 200
    assert "resolved" in sandbox.slash_command(BOB, channel, text="resolve").json["text"]
    sandbox.wait_for_message(channel, lambda m: Action.OPEN_POSTMORTEM in json.dumps(m.get("blocks")))
    return channel


def test_a_non_member_is_refused_everywhere_and_nothing_is_stored(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = incident_channel(sandbox)
    prompt = sandbox.wait_for_message(
        channel, lambda m: Action.OPEN_POSTMORTEM in json.dumps(m.get("blocks"))
    )
    # Members may: alice opens from the prompt and saves a draft; bob opens with /postmortem.
    assert sandbox.click_button(ALICE, channel, prompt["ts"], Action.OPEN_POSTMORTEM).status == 200
    alice_view = sandbox.open_view_for(ALICE)["id"]
    sandbox.fill_view(alice_view, FILLED)
    sandbox.view_action(ALICE, alice_view, Action.SAVE_DRAFT, block_id=Block.MODAL_ACTIONS)
    sandbox.wait_for(lambda: "Draft saved" in json.dumps(sandbox.views[alice_view]["blocks"]))
    bob_view = open_modal(sandbox, channel, user=BOB)
    sandbox.fill_view(bob_view, {**FILLED, Block.SUMMARY: {Action.INPUT: "Bob was never here"}})
    before = stored(stack)
    assert before == (1, ALICE, "draft")

    # Bob leaves the channel: from now on he is not a participant (the member cache forgets the channel).
    sandbox.leave(BOB, channel)

    sandbox.view_action(BOB, bob_view, Action.SAVE_DRAFT, block_id=Block.MODAL_ACTIONS)
    refusal = sandbox.wait_for(lambda: (v := sandbox.open_view_for(BOB)) and v["id"] != bob_view and v)
    assert refusal["title"]["text"] == "Not saved"
    assert f"Only people in <#{channel}>" in json.dumps(refusal["blocks"])
    sandbox.close_view(BOB, refusal["id"])

    submitted = sandbox.submit_view(BOB, bob_view)
    assert submitted.status == 200 and submitted.json["response_action"] == "push", submitted.body
    assert "Only people in" in json.dumps(submitted.json["view"])
    assert bob_view in sandbox.views  # his typing is kept underneath, nothing published

    for text in ("", "restore 1"):
        answer = command_as(sandbox, BOB, channel, text)
        assert answer.status == 200 and "Only people in" in answer.json["text"], answer.body

    sandbox.close_view(BOB, bob_view)
    modals_before = postmortem_modals_opened_for(sandbox, BOB)
    click = {"channel": channel, "ts": prompt["ts"], "action_id": Action.OPEN_POSTMORTEM}
    clicked = click_as(sandbox, BOB, {**click, "value": str(incident_id(stack))})
    assert clicked.status == 200, clicked.body
    # An ephemeral to someone outside the channel is refused by Slack: the refusal comes as a small modal.
    shown = sandbox.wait_for(lambda: sandbox.open_view_for(BOB))
    assert shown["title"]["text"] == "Not allowed" and "Only people in" in json.dumps(shown["blocks"])
    assert postmortem_modals_opened_for(sandbox, BOB) == modals_before == 0

    assert stored(stack) == before
    assert summaries(sandbox) == []
    assert not any(
        "Bob was never here" in json.dumps(c["args"]) for c in sandbox.calls_to("chat.postMessage")
    )


def test_an_admin_outside_the_channel_may_and_a_member_may(admin_stack: LocalStack) -> None:
    sandbox = admin_stack.sandbox
    channel = incident_channel(sandbox)
    assert CAROL not in sandbox.members(channel)

    opened = command_as(sandbox, CAROL, channel)
    assert opened.status == 200 and not opened.body.strip(), opened.body
    view = sandbox.open_view_for(CAROL)
    assert view["callback_id"] == Callback.POSTMORTEM_MODAL
    sandbox.fill_view(view["id"], FILLED)
    sandbox.view_action(CAROL, view["id"], Action.SAVE_DRAFT, block_id=Block.MODAL_ACTIONS)
    sandbox.wait_for(lambda: "Draft saved" in json.dumps(sandbox.views[view["id"]]["blocks"]))
    submitted = sandbox.submit_view(CAROL, view["id"])
    assert submitted.status == 200 and submitted.error is None, submitted.body
    sandbox.wait_for(lambda: summaries(sandbox))
    assert stored(admin_stack) == (2, CAROL, "published")

    restored = command_as(sandbox, CAROL, channel, "restore 1")
    assert "Restored revision 1 as revision 3" in restored.json["text"], restored.body

    # A member (bob) edits and publishes too; the summary is updated in place.
    view_id = open_modal(sandbox, channel, user=BOB)
    sandbox.fill_view(view_id, {Block.SUMMARY: {Action.INPUT: "Bob's better summary"}})
    assert sandbox.submit_view(BOB, view_id).status == 200
    sandbox.wait_for(lambda: "Bob's better summary" in json.dumps(summaries(sandbox)))
    assert len(summaries(sandbox)) == 1
