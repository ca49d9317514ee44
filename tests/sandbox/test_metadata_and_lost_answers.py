"""Message metadata round-trips as in Slack, and the `applied_timeout` fault posts but loses the answer."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.devtools.sandbox import SlackSandbox
from tests.sandbox.conftest import BOT_TOKEN

META = {"event_type": "postmortem_bot_outbox", "event_payload": {"key": "card:1:x"}}


def test_metadata_is_stored_and_returned_only_when_asked_for(client: WebClient, channel: str) -> None:
    posted = client.chat_postMessage(channel=channel, text="hello", metadata=META)
    assert posted["message"]["metadata"] == META
    with_meta = client.conversations_history(channel=channel, include_all_metadata=True)["messages"]
    without = client.conversations_history(channel=channel)["messages"]
    assert with_meta[0]["metadata"] == META
    assert "metadata" not in without[0]
    client.chat_postMessage(channel=channel, text="reply", thread_ts=posted["ts"], metadata=META)
    replies = client.conversations_replies(channel=channel, ts=posted["ts"], include_all_metadata=True)
    assert [m.get("metadata") for m in replies["messages"]] == [META, META]


def test_malformed_metadata_is_refused(client: WebClient, channel: str) -> None:
    from slack_sdk.errors import SlackApiError

    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel=channel, text="x", metadata={"event_type": "t"})  # type: ignore[arg-type]
    assert excinfo.value.response["error"] == "invalid_metadata_format"


def test_applied_timeout_posts_the_message_but_the_client_times_out(sb: SlackSandbox, channel: str) -> None:
    impatient = WebClient(base_url=sb.api_url, token=BOT_TOKEN, timeout=0.3)  # type: ignore[arg-type]
    impatient.retry_handlers = []
    sb.faults.fail_next("chat.postMessage", "applied_timeout", timeout_seconds=1.0)
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel=channel, text="did it post?")
    assert [m["text"] for m in sb.messages(channel)][-1] == "did it post?"
