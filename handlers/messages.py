"""Incident channels: the first human message sets the time to first response; a :pushpin: reaction or
the "Add to timeline" message shortcut puts a message on the incident's timeline.

Slack retries an event it thinks was not received (`X-Slack-Retry-Num`, up to 3 times): events are
archived under their `event_id`, and an id seen before changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot import blocks
from bot.app import Runtime, runtime_of
from bot.clock import utcnow
from bot.db import read_scope, session_scope
from bot.deliveries import archive_delivery, was_delivered
from bot.errors import UserError
from bot.incidents import capture_message, display_id, incident_for_channel, record_first_response
from bot.models import Incident
from bot.notices import enqueue_incident_card

# Plain messages, broadcasts and shared files are people talking; joins, edits and bot posts are not.
_HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}
PIN_REACTIONS = {"pushpin"}
SLACK = "slack"


def slack_ts_to_datetime(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def first_delivery(session: Session, body: dict[str, Any], at: datetime) -> bool:
    """Archive the event; False when Slack sent this `event_id` before (a retry): ignore it then."""
    event_id = body.get("event_id")
    if not event_id:
        return True
    return archive_delivery(
        session,
        source=SLACK,
        delivery_id=event_id,
        event_type=(body.get("event") or {}).get("type"),
        body=json.dumps(body, sort_keys=True),
        at=at,
        processed=True,
    )


def _is_human(event: dict[str, Any], context: BoltContext) -> bool:
    return (
        event.get("subtype") in _HUMAN_SUBTYPES
        and not event.get("bot_id")
        and bool(event.get("user"))
        and event.get("user") != context.bot_user_id
    )


def handle_channel_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
    if not _is_human(event, context):
        return
    runtime = runtime_of(context)
    at = slack_ts_to_datetime(event["ts"])
    with session_scope(runtime.engine) as session:
        incident = incident_for_channel(session=session, channel_id=event["channel"])
        if incident is None or not first_delivery(session, body, utcnow()):
            return
        if record_first_response(incident=incident, user_id=event["user"], at=at):
            enqueue_incident_card(session=session, incident=incident, settings=runtime.settings, at=at)
    runtime.outbox.wake()


def _fetch_message(client: WebClient, channel: str, ts: str) -> dict[str, Any] | None:
    """The message at `ts`: top-level messages come from history, thread replies from their thread."""
    history = client.conversations_history(channel=channel, oldest=ts, latest=ts, inclusive=True, limit=1)
    for message in history.get("messages") or []:
        if message.get("ts") == ts:
            return message
    try:
        replies = client.conversations_replies(channel=channel, ts=ts, limit=200)
    except SlackApiError as exc:
        if exc.response.get("error") == "thread_not_found":
            return None
        raise
    return next((m for m in replies.get("messages") or [] if m.get("ts") == ts), None)


def _capture(
    *,
    runtime: Runtime,
    client: WebClient,
    incident_id: int,
    channel: str,
    message: dict[str, Any],
    event_body: dict[str, Any] | None = None,
) -> bool:
    """Add `message` to the timeline. An event that triggered this is archived in the same transaction,
    after the Slack calls: if they fail, nothing is recorded and Slack's retry of the event is processed."""
    permalink = client.chat_getPermalink(channel=channel, message_ts=message["ts"])["permalink"]
    author = message.get("user")
    with session_scope(runtime.engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None or (event_body is not None and not first_delivery(session, event_body, utcnow())):
            return False
        return capture_message(
            session=session,
            incident=incident,
            channel_id=channel,
            ts=message["ts"],
            occurred_at=slack_ts_to_datetime(message["ts"]),
            author=f"<@{author}>" if author else (message.get("username") or None),
            text=message.get("text") or "",
            permalink=permalink,
            at=utcnow(),
        )


def handle_pin_reaction(
    body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """:pushpin: on a message in an incident channel adds it to the timeline."""
    item = event.get("item") or {}
    if event.get("reaction") not in PIN_REACTIONS or item.get("type") != "message":
        return
    runtime = runtime_of(context)
    with read_scope(runtime.engine) as session:
        incident = incident_for_channel(session=session, channel_id=item["channel"])
        # A retry of an event already handled is skipped before any Slack call; a new one is archived only
        # together with its capture, below.
        if incident is None or was_delivered(session, source=SLACK, delivery_id=body.get("event_id") or ""):
            return
        incident_id = incident.id
    message = _fetch_message(client, item["channel"], item["ts"])
    if message is not None:
        _capture(
            runtime=runtime,
            client=client,
            incident_id=incident_id,  # type: ignore[arg-type]
            channel=item["channel"],
            message=message,
            event_body=body,
        )


def handle_add_to_timeline(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """The "Add to timeline" message shortcut."""
    ack()
    runtime = runtime_of(context)
    channel = body["channel"]["id"]
    with read_scope(runtime.engine) as session:
        incident = incident_for_channel(session=session, channel_id=channel)
        if incident is None:
            raise UserError(
                "This channel isn't an incident channel, so there is no timeline to add to. "
                "Use the shortcut in the incident's channel."
            )
        incident_id, ref = incident.id, display_id(incident)
    added = _capture(
        runtime=runtime, client=client, incident_id=incident_id, channel=channel, message=body["message"]
    )  # type: ignore[arg-type]
    note = "Added to" if added else "Already on"
    client.chat_postEphemeral(
        channel=channel, user=body["user"]["id"], text=f":pushpin: {note} the timeline of incident {ref}."
    )


def handle_membership_change(event: dict[str, Any], context: BoltContext) -> None:
    """Someone joined or left a channel: its cached member list (who may edit a post-mortem) is stale."""
    channel = event.get("channel")
    if isinstance(channel, str):
        runtime_of(context).participants.forget(channel)


def register(app: App) -> None:
    app.event("message")(handle_channel_message)
    app.event("member_joined_channel")(handle_membership_change)
    app.event("member_left_channel")(handle_membership_change)
    app.event("reaction_added")(handle_pin_reaction)
    app.shortcut(blocks.Callback.ADD_TO_TIMELINE)(handle_add_to_timeline)
