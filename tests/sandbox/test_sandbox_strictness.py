"""Every Block Kit and message limit is refused with Slack's error, and the valid twin is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.devtools.sandbox import SlackSandbox


def section(text: str = "hi", kind: str = "mrkdwn") -> dict[str, Any]:
    return {"type": "section", "text": {"type": kind, "text": text}}


def button(text: str = "Go", action_id: str = "go", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id, **extra}


# (name, bad blocks, good blocks): the good twin proves the rule, not the harness, refused the call.
MESSAGE_CASES = [
    ("51 blocks", [section()] * 51, [section()] * 50),
    ("section text > 3000", [section("x" * 3001)], [section("x" * 3000)]),
    (
        "header text > 150",
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}],
    ),
    (
        "mrkdwn header",
        [{"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}],
        [{"type": "header", "text": {"type": "plain_text", "text": "h"}}],
    ),
    (
        "11 fields",
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 10}],
    ),
    (
        "field > 2000",
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2000}]}],
    ),
    (
        "button text > 75",
        [{"type": "actions", "elements": [button("b" * 76)]}],
        [{"type": "actions", "elements": [button("b" * 75)]}],
    ),
    (
        "mrkdwn button text",
        [{"type": "actions", "elements": [{**button(), "text": {"type": "mrkdwn", "text": "*Go*"}}]}],
        [{"type": "actions", "elements": [button()]}],
    ),
    (
        "duplicate block_id",
        [{**section(), "block_id": "a"}, {**section(), "block_id": "a"}],
        [{**section(), "block_id": "a"}, {**section(), "block_id": "b"}],
    ),
    (
        "duplicate action_id in a block",
        [{"type": "actions", "elements": [button(action_id="x"), button(action_id="x")]}],
        [{"type": "actions", "elements": [button(action_id="x"), button(action_id="y")]}],
    ),
    ("unknown block type", [{"type": "sektion", "text": {"type": "mrkdwn", "text": "hi"}}], [section()]),
    ("empty text object", [section("")], [section("a")]),
    ("unknown property", [{**section(), "colour": "red"}], [section()]),
]


@pytest.mark.parametrize(
    ("bad", "good"), [(b, g) for _, b, g in MESSAGE_CASES], ids=[n for n, _, _ in MESSAGE_CASES]
)
def test_invalid_blocks_are_refused_and_valid_twin_accepted(
    client: WebClient, channel: str, sb: SlackSandbox, bad: list, good: list
) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel=channel, text="fallback", blocks=bad)
    assert excinfo.value.response["error"] == "invalid_blocks"
    # The answer points at the offending field, as Slack's response_metadata does.
    assert "json-pointer:/blocks" in excinfo.value.response["response_metadata"]["messages"][0]
    assert sb.messages(channel) == [m for m in sb.messages(channel) if m["subtype"] == "channel_join"]

    assert client.chat_postMessage(channel=channel, text="fallback", blocks=good)["ok"]


def test_blocks_sent_as_a_form_field_are_checked_too(sb: SlackSandbox, channel: str) -> None:
    # Bolt's say() and older code send form bodies with blocks as a JSON string.
    client = WebClient(base_url=sb.api_url, token="xoxb-sandbox")
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        client.api_call("chat.postMessage", params={"channel": channel, "text": "t", "blocks": "[{}]"})
    with pytest.raises(SlackApiError, match="invalid_blocks"):  # multipart, as `data=` sends it
        client.api_call(
            "chat.postMessage", data={"channel": channel, "text": "t", "blocks": '[{"type": "x"}]'}
        )
    ok = client.api_call(
        "chat.postMessage", params={"channel": channel, "text": "t", "blocks": '[{"type": "divider"}]'}
    )
    assert ok["ok"]


def test_text_over_40000_chars_is_msg_too_long_not_truncated(
    client: WebClient, channel: str, sb: SlackSandbox
) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel=channel, text="x" * 40_001)
    assert excinfo.value.response["error"] == "msg_too_long"
    ts = client.chat_postMessage(channel=channel, text="x" * 40_000)["ts"]
    assert len(sb.messages(channel, ts)[0]["text"]) == 40_000


def test_blocks_without_text_fallback_break_the_house_rule(client: WebClient, channel: str) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel=channel, blocks=[section()])
    assert excinfo.value.response["error"] == "missing_text_fallback"
    assert client.chat_postMessage(channel=channel, blocks=[section()], text="hi")["ok"]


def test_message_without_any_content_is_no_text(client: WebClient, channel: str) -> None:
    with pytest.raises(SlackApiError, match="no_text"):
        client.chat_postMessage(channel=channel, text="")


def modal(**overrides: Any) -> dict[str, Any]:
    view = {
        "type": "modal",
        "callback_id": "pm",
        "title": {"type": "plain_text", "text": "Post-mortem"},
        "submit": {"type": "plain_text", "text": "Publish"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "summary",
                "label": {"type": "plain_text", "text": "Summary"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    view.update(overrides)
    return view


def title(n: int) -> dict[str, str]:
    return {"type": "plain_text", "text": "t" * n}


VIEW_CASES = [
    ("title > 24", modal(title=title(25)), modal(title=title(24))),
    ("submit > 24", modal(submit=title(25)), modal(submit=title(24))),
    ("close > 24", modal(close=title(25)), modal(close=title(24))),
    ("mrkdwn title", modal(title={"type": "mrkdwn", "text": "T"}), modal(title=title(5))),
    ("private_metadata > 3000", modal(private_metadata="m" * 3001), modal(private_metadata="m" * 3000)),
    ("callback_id > 255", modal(callback_id="c" * 256), modal(callback_id="c" * 255)),
    ("101 blocks", modal(blocks=[{"type": "divider"}] * 101), modal(blocks=[{"type": "divider"}] * 100)),
    (
        "mrkdwn input label",
        modal(blocks=[{**modal()["blocks"][0], "label": {"type": "mrkdwn", "text": "*S*"}}]),
        modal(),
    ),
    ("inputs without submit", {k: v for k, v in modal().items() if k != "submit"}, modal()),
    (
        "unknown element",
        modal(blocks=[{**modal()["blocks"][0], "element": {"type": "text_box", "action_id": "v"}}]),
        modal(),
    ),
]


@pytest.mark.parametrize(
    ("bad", "good"), [(b, g) for _, b, g in VIEW_CASES], ids=[n for n, _, _ in VIEW_CASES]
)
def test_invalid_views_are_refused_and_valid_twin_accepted(
    client: WebClient, sb: SlackSandbox, channel: str, bad: dict, good: dict
) -> None:
    trigger = sb.slash_command("U0ALICE", channel, "/postmortem").trigger_id
    with pytest.raises(SlackApiError) as excinfo:
        client.views_open(trigger_id=trigger, view=bad)
    assert excinfo.value.response["error"] == "invalid_arguments"
    assert excinfo.value.response["response_metadata"]["messages"]
    assert sb.views == {}
    # A refused call does not use up the trigger.
    assert client.views_open(trigger_id=trigger, view=good)["ok"]
