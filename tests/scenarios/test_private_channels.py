"""Privacy over HTTP: an incident in a private channel is summarised in the public post-mortems channel only
when the publisher ticks "share publicly"; the confirmation and the document stay in the private channel."""

from __future__ import annotations

import json

from bot.devtools.sandbox import SlackSandbox
from bot.slack.blocks import Action, Block
from tests.scenarios.conftest import BOB, declare
from tests.scenarios.test_postmortem_loop import FILLED, open_modal, summaries

SECRET_ROOT_CAUSE = "The vault key leaked into a debug log"


def publish_in_private_channel(sandbox: SlackSandbox, *, share: bool) -> str:
    channel = declare(sandbox, name="inc-vault", title="Vault sealed itself", private=True)
    view_id = open_modal(sandbox, channel)
    view = sandbox.views[view_id]
    assert Block.SHARE_PUBLICLY in {b.get("block_id") for b in view["blocks"]}, "no share checkbox"
    values = {**FILLED, Block.ROOT_CAUSE: {Action.INPUT: SECRET_ROOT_CAUSE}}
    if share:
        values[Block.SHARE_PUBLICLY] = {Action.SHARE_CHECKBOX: ["share"]}
    sandbox.fill_view(view_id, values)
    assert sandbox.submit_view(BOB, view_id).status == 200
    # The confirmation and the Markdown document go to the private channel's thread either way.
    sandbox.wait_for_message(channel, lambda m: "Post-mortem published" in m.get("text", ""))
    sandbox.wait_for(lambda: [f for f in sandbox.files.values() if f["name"].endswith(".md")])
    return channel


def public_calls(sandbox: SlackSandbox) -> list[dict]:
    public = sandbox.channel_id("postmortems")
    return [
        c
        for method in ("chat.postMessage", "chat.update")
        for c in sandbox.calls_to(method)
        if c["args"].get("channel") == public
    ]


def test_by_default_nothing_about_a_private_incident_leaves_its_channel(sandbox: SlackSandbox) -> None:
    channel = publish_in_private_channel(sandbox, share=False)
    confirmation = sandbox.wait_for_message(channel, lambda m: "Post-mortem published" in m.get("text", ""))
    assert "summarised in" not in confirmation["text"]
    assert summaries(sandbox) == []
    assert public_calls(sandbox) == []
    assert SECRET_ROOT_CAUSE not in json.dumps(sandbox.messages(sandbox.channel_id("postmortems")))


def test_ticking_share_publicly_posts_the_summary(sandbox: SlackSandbox) -> None:
    channel = publish_in_private_channel(sandbox, share=True)
    summary = sandbox.wait_for(lambda: summaries(sandbox))
    assert SECRET_ROOT_CAUSE in json.dumps(summary)
    confirmation = sandbox.wait_for_message(channel, lambda m: "Post-mortem published" in m.get("text", ""))
    assert "summarised in" in confirmation["text"]


def test_a_public_channel_has_no_share_checkbox(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox)
    view_id = open_modal(sandbox, channel)
    view = sandbox.views[view_id]
    assert Block.SHARE_PUBLICLY not in {b.get("block_id") for b in view["blocks"]}


def test_unticking_share_publicly_withdraws_the_public_summary(sandbox: SlackSandbox) -> None:
    channel = publish_in_private_channel(sandbox, share=True)
    sandbox.wait_for(lambda: SECRET_ROOT_CAUSE in json.dumps(summaries(sandbox)))
    view_id = open_modal(sandbox, channel)
    sandbox.fill_view(view_id, {Block.SHARE_PUBLICLY: {Action.SHARE_CHECKBOX: []}})
    assert sandbox.submit_view(BOB, view_id).status == 200
    public = sandbox.channel_id("postmortems")
    sandbox.wait_for(lambda: "was withdrawn" in json.dumps(sandbox.messages(public)))
    assert SECRET_ROOT_CAUSE not in json.dumps(sandbox.messages(public))
