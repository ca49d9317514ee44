"""Crash recovery for the outbox: finding in Slack a message that an earlier attempt posted but could not
record (its answer was lost, or its worker died between sending and recording).

Every post carries Slack message metadata with its row's key (`event_type` OUTBOX_EVENT_TYPE,
`event_payload.key`); an upload is found by its file name.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.models import OutboxMessage
from bot.slack.channels import is_user_id
from bot.slack.outbox import OutboxKind

OUTBOX_EVENT_TYPE = "postmortem_bot_outbox"
# How far back to look for a message a crashed attempt may have posted (one page of history).
RECOVERY_LOOKBACK = 200


def find_in_slack(
    client: WebClient, row: OutboxMessage, channel: str, thread_ts: str | None
) -> tuple[str, str] | None:
    """(channel, ts) of the message carrying this row's key (or, for an upload, its file), if Slack has
    it."""
    oldest = f"{row.created_at.timestamp() - 60:.6f}"
    if is_user_id(channel):
        # A nudge is posted "to" a person and lands in the app's DM with them; that DM's history is read
        # by its own id (conversations.history refuses a user id with channel_not_found).
        channel = client.conversations_open(users=channel)["channel"]["id"]
    try:
        if thread_ts:
            page = client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=RECOVERY_LOOKBACK
            )
        else:
            page = client.conversations_history(
                channel=channel, oldest=oldest, include_all_metadata=True, limit=RECOVERY_LOOKBACK
            )
    except SlackApiError as exc:
        if exc.response.get("error") == "not_in_channel":
            return None  # posting needs membership, so nothing was posted there
        raise
    filename = row.payload.get("filename")
    messages: list[dict[str, Any]] = page.get("messages", [])
    for message in messages:
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") == OUTBOX_EVENT_TYPE and (
            (metadata.get("event_payload") or {}).get("key") == row.key
        ):
            return channel, message["ts"]
        if row.kind == OutboxKind.UPLOAD and any(
            f.get("name") == filename for f in message.get("files") or []
        ):
            return channel, message["ts"]
    return None
