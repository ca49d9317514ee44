"""What the sandbox sends to the bot: signed like Slack, shaped like Slack, retried like Slack."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.devtools.sandbox import SlackSandbox, slack_signature

from .conftest import SECRET, FakeBot

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


def test_signer_matches_slacks_published_vector() -> None:
    vectors = json.loads((FIXTURES / "signature_test_vectors.json").read_text())
    vector = next(v for v in vectors if "x_slack_signature" in v)
    body = (FIXTURES / "slack" / "slash_command_signed_vector.txt").read_bytes().rstrip(b"\n")
    assert body.decode() == vector["body"]
    signature = slack_signature(vector["signing_secret"], vector["x_slack_request_timestamp"], body)
    assert signature == vector["x_slack_signature"]


def test_slash_command_is_signed_form_with_fresh_trigger_and_response_url(
    sb: SlackSandbox, fake_bot: FakeBot
) -> None:
    channel = sb.create_channel("inc-1")
    delivery = sb.slash_command("U0ALICE", channel, "/postmortem", "new Disk full")
    assert delivery.ok and delivery.transport == "http"
    request = fake_bot.received[-1]
    # Verified by slack_sdk's own verifier, freshness included (the clock is real time here).
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(request.body, request.headers)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = request.payload
    expected_keys = {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "response_url",
        "trigger_id",
        "api_app_id",
    }
    assert expected_keys <= set(fields)
    assert (fields["command"], fields["text"], fields["channel_name"]) == (
        "/postmortem",
        "new Disk full",
        "inc-1",
    )
    assert fields["trigger_id"] == delivery.trigger_id
    assert fields["response_url"].startswith(f"{sb.url}/response/")


def test_slash_command_answer_is_shown_like_slack(sb: SlackSandbox, fake_bot: FakeBot) -> None:
    channel = sb.create_channel("inc-1")
    fake_bot.answer_json({"text": "Usage: /postmortem new <title>"})
    sb.slash_command("U0ALICE", channel, "/postmortem", "help")
    assert [e["text"] for e in sb.ephemerals(channel, user="U0ALICE")] == ["Usage: /postmortem new <title>"]
    assert sb.messages(channel) == []


def test_response_url_ephemeral_in_channel_replace_and_delete(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    sb.slash_command("U0BOB", channel, "/postmortem", "list")
    response_url = fake_bot.received[-1].payload["response_url"]

    def post(body: dict) -> tuple[int, str]:
        request = urllib.request.Request(
            response_url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert post({"text": "only bob"}) == (200, "ok")
    assert post({"text": "everyone", "response_type": "in_channel"}) == (200, "ok")
    assert [e["text"] for e in sb.ephemerals(channel, "U0BOB")] == ["only bob"]
    assert sb.messages(channel)[-1]["text"] == "everyone"
    assert post({"blocks": [{"type": "divider"}]}) == (400, "missing_text_fallback")
    assert sb.calls_to("response_url")[-1]["error"] == "missing_text_fallback"

    # A button's response_url replaces or deletes the message it came from.
    blocks = [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "ack",
                    "text": {"type": "plain_text", "text": "Ack"},
                    "value": "7",
                }
            ],
        }
    ]
    ts = client.chat_postMessage(channel=channel, text="prompt", blocks=blocks)["ts"]
    sb.click_button("U0ALICE", channel, ts, "ack")
    response_url = fake_bot.received[-1].payload["response_url"]
    assert post({"replace_original": True, "text": "acknowledged"}) == (200, "ok")
    assert (
        sb.messages(channel, ts)[0]["text"] == "acknowledged" and sb.messages(channel, ts)[0]["blocks"] == []
    )
    assert post({"delete_original": True}) == (200, "ok")
    assert ts not in [m["ts"] for m in sb.messages(channel)]
    for _ in range(3):
        post({"text": "again"})
    assert post({"text": "sixth"}) == (404, "used_url")  # Slack: 5 uses per response_url


def test_message_event_envelope(sb: SlackSandbox, channel: str, fake_bot: FakeBot) -> None:
    ts = sb.post_message("U0ALICE", channel, "looking into it")
    payload = fake_bot.received[-1].payload
    assert fake_bot.received[-1].headers["Content-Type"] == "application/json"
    assert payload["type"] == "event_callback" and payload["event_id"].startswith("Ev")
    assert payload["authorizations"][0]["user_id"] == "U0BOT"
    event = payload["event"]
    assert (
        event["type"],
        event["user"],
        event["text"],
        event["ts"],
        event["channel"],
        event["channel_type"],
    ) == ("message", "U0ALICE", "looking into it", ts, channel, "channel")
    sb.post_message("U0BOB", channel, "me too")
    assert fake_bot.received[-1].payload["event_id"] != payload["event_id"]


def test_no_events_from_channels_the_bot_is_not_in(sb: SlackSandbox, fake_bot: FakeBot) -> None:
    quiet = sb.create_channel("random")
    sb.post_message("U0ALICE", quiet, "hello?")
    assert fake_bot.received == [] and sb.deliveries == []
    with pytest.raises(PermissionError):
        sb.post_message("U0BOT", sb.create_channel("other", members=["U0ALICE"]), "x")


def test_reaction_and_join_events(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    ts = sb.post_message("U0ALICE", channel, "root cause found")
    sb.add_reaction("U0BOB", channel, ts, "pushpin")
    event = fake_bot.received[-1].payload["event"]
    assert (event["type"], event["reaction"], event["item"]) == (
        "reaction_added",
        "pushpin",
        {"type": "message", "channel": channel, "ts": ts},
    )
    sb.create_channel("x", members=[])
    newcomer = sb.create_channel("inc-2", members=["U0ALICE"])
    client.conversations_join(channel=newcomer)
    sb.join("U0CAROL", newcomer)
    kinds = [(r.payload["event"]["type"], r.payload["event"].get("subtype")) for r in fake_bot.received[-2:]]
    assert kinds == [("member_joined_channel", None), ("message", "channel_join")]
    sb.leave("U0CAROL", newcomer)
    kinds = [(r.payload["event"]["type"], r.payload["event"].get("subtype")) for r in fake_bot.received[-2:]]
    assert kinds == [("member_left_channel", None), ("message", "channel_leave")]
    assert "U0CAROL" not in client.conversations_members(channel=newcomer)["members"]
    with pytest.raises(PermissionError):
        sb.post_message("U0CAROL", newcomer, "still here?")


def test_redelivery_carries_retry_headers_and_same_event_id(
    sb: SlackSandbox, channel: str, fake_bot: FakeBot
) -> None:
    ts = sb.post_message("U0ALICE", channel, "hi")
    first = fake_bot.received[-1]
    assert sb.redeliver(sb.deliveries[-1], retry_num=2, reason="http_timeout").ok
    retry = fake_bot.received[-1]
    assert retry.payload["event_id"] == first.payload["event_id"]
    assert (retry.headers["X-Slack-Retry-Num"], retry.headers["X-Slack-Retry-Reason"]) == (
        "2",
        "http_timeout",
    )
    assert "X-Slack-Retry-Num" not in first.headers

    reaction = sb.add_reaction("U0BOB", channel, ts, "eyes")
    assert sb.redeliver(reaction).ok
    assert fake_bot.received[-1].payload["event_id"] == reaction.payload["event_id"]
    with pytest.raises(ValueError):
        sb.redeliver(sb.slash_command("U0ALICE", channel))


def test_deliver_raw_lets_tests_tamper(sb: SlackSandbox, fake_bot: FakeBot) -> None:
    body = b'{"type": "event_callback"}'
    assert sb.deliver_raw(body).status == 200
    tampered = sb.deliver_raw(body, headers={"X-Slack-Signature": "v0=" + "0" * 64})
    assert tampered.status == 401 and not fake_bot.received[-1].verified


def test_click_button_builds_block_actions_from_the_message(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    def btn(value: str) -> dict:
        return {
            "type": "button",
            "action_id": "open_postmortem",
            "value": value,
            "text": {"type": "plain_text", "text": f"Write {value}"},
        }

    blocks = [
        {"type": "actions", "block_id": "a", "elements": [btn("7")]},
        {"type": "section", "block_id": "s", "text": {"type": "mrkdwn", "text": "or"}, "accessory": btn("8")},
    ]
    ts = client.chat_postMessage(channel=channel, text="Write the post-mortem", blocks=blocks)["ts"]
    delivery = sb.click_button("U0CAROL", channel, ts, "open_postmortem", value="8")
    payload = fake_bot.received[-1].payload
    assert payload["type"] == "block_actions" and payload["trigger_id"] == delivery.trigger_id
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": channel,
        "is_ephemeral": False,
    }
    assert payload["actions"][0]["value"] == "8" and payload["actions"][0]["block_id"] == "s"
    assert payload["message"]["ts"] == ts and payload["user"]["id"] == "U0CAROL"
    with pytest.raises(KeyError):
        sb.click_button("U0CAROL", channel, ts, "missing_action")


def test_message_shortcut(sb: SlackSandbox, channel: str, fake_bot: FakeBot) -> None:
    ts = sb.post_message("U0ALICE", channel, "deploy broke it")
    delivery = sb.message_shortcut("U0BOB", channel, ts, "pin_to_timeline")
    payload = fake_bot.received[-1].payload
    assert (payload["type"], payload["callback_id"], payload["message"]["text"]) == (
        "message_action",
        "pin_to_timeline",
        "deploy broke it",
    )
    assert payload["trigger_id"] == delivery.trigger_id


def test_no_answer_within_3_seconds_is_a_timeout(sb: SlackSandbox, channel: str, fake_bot: FakeBot) -> None:
    sb.ack_timeout = 0.2
    fake_bot.responder = lambda request: (time.sleep(0.5), (200, ""))[1]
    delivery = sb.slash_command("U0ALICE", channel, "/postmortem")
    assert (delivery.status, delivery.error) == (0, "http_timeout")


def test_wait_for_returns_value_or_explains(sb: SlackSandbox, client: WebClient, channel: str) -> None:
    client.chat_postMessage(channel=channel, text="summary posted")
    found = sb.wait_for_message(channel, lambda m: "summary" in m["text"], timeout=1)
    assert found["text"] == "summary posted"
    with pytest.raises(TimeoutError, match="summary posted"):  # the transcript is in the message
        sb.wait_for_message(channel, lambda m: "never" in m["text"], timeout=0.1)
