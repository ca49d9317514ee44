"""Incident channels: the first human message sets the time to first response; a :pushpin: reaction or
the "Add to timeline" message shortcut puts a message on the incident's timeline. Joins and leaves make
the cached member list (who may edit a post-mortem) stale.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.errors import UserError
from bot.domain.incidents import display_id
from bot.flows import incidents
from bot.flows.context import Runtime
from bot.slack import blocks
from handlers import channels

# Plain messages, broadcasts and shared files are people talking; joins, edits and bot posts are not.
_HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}
# Slackbot's messages (reminders, auto-responses) carry a user id but no person wrote them.
SLACKBOT = "USLACKBOT"
PIN_REACTIONS = {"pushpin"}


def _event_instant(event: dict[str, Any]) -> datetime:
    """When Slack says the event happened: the same for a retry of it, so its effect is keyed once."""
    return incidents.slack_ts_to_datetime(str(event.get("event_ts") or event["ts"]))


def _is_human(event: dict[str, Any], context: BoltContext) -> bool:
    return (
        event.get("subtype") in _HUMAN_SUBTYPES
        and not event.get("bot_id")
        and bool(event.get("user"))
        and event.get("user") not in (context.bot_user_id, SLACKBOT)
    )


def handle_channel_message(
    body: dict[str, Any], event: dict[str, Any], context: BoltContext, runtime: Runtime
) -> None:
    subtype = event.get("subtype")
    if subtype in channels.CONVERSIONS:
        channels.handle_conversion(event, runtime)
    elif subtype == "message_changed":
        changed = event.get("message") or {}
        if changed.get("ts"):
            incidents.message_edited(
                runtime,
                channel_id=event["channel"],
                ts=changed["ts"],
                text=changed.get("text") or "",
                at=_event_instant(event),
            )
    elif subtype == "message_deleted":
        if event.get("deleted_ts"):
            incidents.message_deleted(
                runtime, channel_id=event["channel"], ts=event["deleted_ts"], at=_event_instant(event)
            )
    elif _is_human(event, context):
        incidents.person_spoke(
            runtime,
            body=body,
            channel_id=event["channel"],
            user_id=event["user"],
            ts=event["ts"],
            thread_ts=event.get("thread_ts"),
        )


def _fetch_message(client: WebClient, channel: str, ts: str) -> dict[str, Any] | None:
    """The message at `ts`: top-level messages come from history, thread replies from their thread."""
    history = client.conversations_history(channel=channel, oldest=ts, latest=ts, inclusive=True, limit=1)
    for message in history.get("messages") or []:
        if message.get("ts") == ts:
            return dict(message)
    try:
        replies = client.conversations_replies(channel=channel, ts=ts, limit=200)
    except SlackApiError as exc:
        if exc.response.get("error") == "thread_not_found":
            return None
        raise
    return next((dict(m) for m in replies.get("messages") or [] if m.get("ts") == ts), None)


def _permalink(client: WebClient, channel: str, ts: str) -> str | None:
    link: str | None = client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
    return link


def handle_pin_reaction(
    body: dict[str, Any], event: dict[str, Any], client: WebClient, runtime: Runtime
) -> None:
    """:pushpin: on a message in an incident channel adds it to the timeline."""
    item = event.get("item") or {}
    if event.get("reaction") not in PIN_REACTIONS or item.get("type") != "message":
        return
    incident = incidents.incident_in_channel(runtime, item["channel"])
    # A retry of an event already handled is skipped before any Slack call; a new one is archived only
    # together with its capture (incidents.add_to_timeline).
    if incident is None or incident.id is None or incidents.seen_before(runtime, body):
        return
    message = _fetch_message(client, item["channel"], item["ts"])
    if message is not None:
        incidents.add_to_timeline(
            runtime,
            incident_id=incident.id,
            channel_id=item["channel"],
            message=message,
            permalink=_permalink(client, item["channel"], message["ts"]),
            event_body=body,
        )


def handle_add_to_timeline(ack: Ack, body: dict[str, Any], client: WebClient, runtime: Runtime) -> None:
    """The "Add to timeline" message shortcut."""
    ack()
    channel = body["channel"]["id"]
    incident = incidents.incident_in_channel(runtime, channel)
    if incident is None or incident.id is None:
        raise UserError(
            "This channel isn't an incident channel, so there is no timeline to add to. "
            "Use the shortcut in the incident's channel."
        )
    message = body["message"]
    added = incidents.add_to_timeline(
        runtime,
        incident_id=incident.id,
        channel_id=channel,
        message=message,
        permalink=_permalink(client, channel, message["ts"]),
    )
    note = "Added to" if added else "Already on"
    client.chat_postEphemeral(
        channel=channel,
        user=body["user"]["id"],
        text=f":pushpin: {note} the timeline of incident {display_id(incident)}.",
    )


def handle_membership_change(event: dict[str, Any], context: BoltContext, runtime: Runtime) -> None:
    """Someone joined or left a channel: its cached member list (who may edit a post-mortem) is stale."""
    channel = event.get("channel")
    if isinstance(channel, str):
        runtime.participants.forget(channel)
    if event.get("type") == "member_joined_channel":
        channels.bot_invited_back(event, context, runtime)


def register(app: App) -> None:
    app.event("message")(handle_channel_message)
    app.event("member_joined_channel")(handle_membership_change)
    app.event("member_left_channel")(handle_membership_change)
    app.event("reaction_added")(handle_pin_reaction)
    app.shortcut(blocks.Callback.ADD_TO_TIMELINE)(handle_add_to_timeline)
