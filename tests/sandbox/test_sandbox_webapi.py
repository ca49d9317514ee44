"""Web API methods through the real slack_sdk WebClient: channels, messages, auth, users."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.devtools.sandbox import SlackSandbox

from .conftest import error_of


def test_auth_test_names_the_bot(client: WebClient) -> None:
    response = client.auth_test()
    assert (response["user_id"], response["bot_id"], response["team_id"]) == ("U0BOT", "B0BOT", "T0SANDBOX")


def test_tokens_are_checked(sb: SlackSandbox) -> None:
    assert error_of(WebClient(base_url=sb.api_url, token="xoxb-wrong").auth_test) == "invalid_auth"
    assert error_of(WebClient(base_url=sb.api_url).auth_test) == "not_authed"
    # The app-level token only opens Socket Mode connections; the bot token cannot.
    assert (
        error_of(WebClient(base_url=sb.api_url, token="xapp-sandbox").auth_test) == "not_allowed_token_type"
    )
    bot = WebClient(base_url=sb.api_url, token="xoxb-sandbox")
    assert error_of(bot.apps_connections_open, app_token="xoxb-sandbox") == "not_allowed_token_type"


def test_unknown_method(client: WebClient) -> None:
    assert error_of(client.api_call, api_method="chat.postMesage") == "unknown_method"


def test_posting_needs_membership_of_public_channel(sb: SlackSandbox, client: WebClient) -> None:
    channel = sb.create_channel("general")
    assert error_of(client.chat_postMessage, channel=channel, text="hi") == "not_in_channel"
    assert error_of(client.chat_postMessage, channel="C9999", text="hi") == "channel_not_found"
    # Names are not ids: the bot must resolve them (stricter than Slack's legacy name support).
    assert error_of(client.chat_postMessage, channel="#general", text="hi") == "channel_not_found"
    client.conversations_join(channel=channel)
    assert client.chat_postMessage(channel=channel, text="hi")["ok"]
    assert [m["text"] for m in sb.messages(channel)][-1] == "hi"


def test_private_channels_are_invisible_until_invited(sb: SlackSandbox, client: WebClient) -> None:
    secret = sb.create_channel("secret", is_private=True, members=["U0ALICE"])
    assert error_of(client.conversations_info, channel=secret) == "channel_not_found"
    assert error_of(client.conversations_join, channel=secret) == "channel_not_found"
    assert error_of(client.chat_postMessage, channel=secret, text="x") == "channel_not_found"
    assert secret not in [c["id"] for c in client.conversations_list(types="private_channel")["channels"]]
    # A person invites the bot (the sandbox's join stands in for /invite).
    sb.join("U0BOT", secret)
    assert client.chat_postMessage(channel=secret, text="x")["ok"]
    assert error_of(client.conversations_join, channel=secret) == "method_not_supported_for_channel_type"


def test_conversations_create_invite_and_members(sb: SlackSandbox, client: WebClient) -> None:
    created = client.conversations_create(name="inc-42-disk-full")["channel"]
    assert created["is_member"] and created["name"] == "inc-42-disk-full"
    assert error_of(client.conversations_create, name="inc-42-disk-full") == "name_taken"
    assert error_of(client.conversations_create, name="Has Spaces") == "invalid_name_specials"
    assert error_of(client.conversations_create, name="x" * 81) == "invalid_name_maxlength"
    client.conversations_invite(channel=created["id"], users="U0ALICE,U0BOB")
    assert (
        error_of(client.conversations_invite, channel=created["id"], users="U0ALICE") == "already_in_channel"
    )
    assert error_of(client.conversations_invite, channel=created["id"], users="U0NOBODY") == "user_not_found"
    assert error_of(client.conversations_invite, channel=created["id"], users="U0BOT") == "cant_invite_self"
    assert client.conversations_members(channel=created["id"])["members"] == ["U0BOT", "U0ALICE", "U0BOB"]
    assert sb.channel_id("inc-42-disk-full") == created["id"]
    assert [m["subtype"] for m in sb.messages(created["id"])] == ["channel_join", "channel_join"]


def test_conversations_list_paginates_with_cursor(sb: SlackSandbox, client: WebClient) -> None:
    ids = [sb.create_channel(f"c{i}") for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        response = client.conversations_list(limit=2, cursor=cursor)
        seen += [c["id"] for c in response["channels"]]
        pages += 1
        cursor = response["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert (seen, pages) == (ids, 3)
    assert error_of(client.conversations_list, cursor="bm9wZQ==") == "invalid_cursor"


def test_threads_history_and_replies(sb: SlackSandbox, client: WebClient, channel: str) -> None:
    parent = client.chat_postMessage(channel=channel, text="parent")["ts"]
    reply = sb.post_message("U0ALICE", channel, "reply", thread_ts=parent)
    client.chat_postMessage(
        channel=channel, text="bot reply", thread_ts=reply
    )  # a reply's ts joins the thread
    history = client.conversations_history(channel=channel)["messages"]
    assert history[0]["text"] == "parent" and history[0]["reply_count"] == 2
    assert "reply" not in [m["text"] for m in history]
    replies = client.conversations_replies(channel=channel, ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["parent", "reply", "bot reply"]
    assert all(m["thread_ts"] == parent for m in replies)
    assert (
        error_of(client.chat_postMessage, channel=channel, text="x", thread_ts="1.000001")
        == "thread_not_found"
    )
    assert error_of(client.conversations_replies, channel=channel, ts="1.000001") == "thread_not_found"
    assert [m["text"] for m in sb.messages(channel, parent)] == ["parent", "reply", "bot reply"]


def test_metadata_is_stored_and_returned_on_request(
    sb: SlackSandbox, client: WebClient, channel: str
) -> None:
    metadata = {"event_type": "incident_declared", "event_payload": {"incident_id": 7}}
    ts = client.chat_postMessage(channel=channel, text="declared", metadata=metadata)["ts"]
    assert sb.messages(channel, ts)[0]["metadata"] == metadata
    plain = client.conversations_history(channel=channel)["messages"][0]
    assert "metadata" not in plain
    full = client.conversations_history(channel=channel, include_all_metadata=True)["messages"][0]
    assert full["metadata"] == metadata
    bad = {"event_type": "x"}
    assert (
        error_of(client.chat_postMessage, channel=channel, text="t", metadata=bad)
        == "invalid_metadata_format"
    )


def test_chat_update_rules(sb: SlackSandbox, client: WebClient, channel: str) -> None:
    ts = client.chat_postMessage(channel=channel, text="v1")["ts"]
    client.chat_update(channel=channel, ts=ts, text="v2", blocks=[{"type": "divider"}])
    message = sb.messages(channel, ts)[0]
    assert (message["text"], message["blocks"], message["edited"]["user"]) == (
        "v2",
        [{"type": "divider"}],
        "U0BOT",
    )
    assert len([m for m in sb.messages(channel) if m["bot_id"]]) == 1
    human = sb.post_message("U0ALICE", channel, "mine")
    assert error_of(client.chat_update, channel=channel, ts=human, text="x") == "cant_update_message"
    assert error_of(client.chat_update, channel=channel, ts="1.000001", text="x") == "message_not_found"
    assert error_of(client.chat_update, channel=channel, ts=ts, text="x" * 40_001) == "msg_too_long"


def test_permalink_ephemeral_reactions_and_users(sb: SlackSandbox, client: WebClient, channel: str) -> None:
    ts = client.chat_postMessage(channel=channel, text="hello")["ts"]
    link = client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"]
    assert link.endswith(f"/archives/{channel}/p{ts.replace('.', '')}")
    assert error_of(client.chat_getPermalink, channel=channel, message_ts="1.000001") == "message_not_found"

    client.chat_postEphemeral(channel=channel, user="U0BOB", text="just for bob")
    assert [e["text"] for e in sb.ephemerals(channel, user="U0BOB")] == ["just for bob"]
    outsider = sb.create_channel("elsewhere", members=["U0ALICE"])
    client.conversations_join(channel=outsider)
    assert (
        error_of(client.chat_postEphemeral, channel=outsider, user="U0BOB", text="x") == "user_not_in_channel"
    )

    client.reactions_add(channel=channel, timestamp=ts, name="pushpin")
    assert error_of(client.reactions_add, channel=channel, timestamp=ts, name="pushpin") == "already_reacted"
    assert sb.messages(channel, ts)[0]["reactions"] == [{"name": "pushpin", "users": ["U0BOT"], "count": 1}]

    assert client.users_info(user="U0ALICE")["user"]["real_name"] == "Alice Adams"
    assert error_of(client.users_info, user="U0NOBODY") == "user_not_found"


def test_posting_to_a_user_id_opens_a_dm(sb: SlackSandbox, client: WebClient) -> None:
    response = client.chat_postMessage(channel="U0CAROL", text="reminder")
    assert response["channel"].startswith("D")
    assert client.conversations_open(users="U0CAROL")["channel"]["id"] == response["channel"]
    assert [m["text"] for m in sb.messages(response["channel"])] == ["reminder"]


def test_call_log_records_successes_and_failures(sb: SlackSandbox, client: WebClient, channel: str) -> None:
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C9999", text="x")
    client.chat_postMessage(channel=channel, text="y")
    posts = sb.calls_to("chat.postMessage")
    assert [(c["ok"], c["error"], c["args"]["text"]) for c in posts] == [
        (False, "channel_not_found", "x"),
        (True, None, "y"),
    ]
    assert "token" not in posts[0]["args"] and isinstance(posts[0]["at"], float)
