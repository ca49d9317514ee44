"""Channel life events: archived, unarchived, renamed, deleted (`channel_*`, and `group_*` for private
channels), made private or public (only a message subtype says so), and the bot removed (`channel_left`,
`group_left`) or invited back (its own `member_joined_channel`)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext

from bot.core.clock import utcnow
from bot.flows import channel_life
from bot.flows.context import Runtime

# The message subtypes Slack sends when a channel changes visibility, and what they make it.
CONVERSIONS = {"channel_convert_to_private": True, "channel_convert_to_public": False}


def _channel_id(event: dict[str, Any]) -> str:
    channel = event["channel"]
    return str(channel["id"] if isinstance(channel, dict) else channel)


def handle_archive(event: dict[str, Any], runtime: Runtime) -> None:
    archived = event["type"].endswith("_archive")
    channel_life.channel_changed(runtime, _channel_id(event), at=utcnow(), is_archived=archived)


def handle_rename(event: dict[str, Any], runtime: Runtime) -> None:
    channel_life.channel_changed(runtime, _channel_id(event), at=utcnow(), name=event["channel"]["name"])


def handle_deleted(event: dict[str, Any], runtime: Runtime) -> None:
    channel_life.channel_changed(runtime, _channel_id(event), at=utcnow(), is_deleted=True)


def handle_bot_removed(event: dict[str, Any], runtime: Runtime) -> None:
    channel_life.bot_removed(runtime, _channel_id(event), actor_id=event.get("actor_id"), at=utcnow())


def handle_conversion(event: dict[str, Any], runtime: Runtime) -> None:
    channel_life.privacy_changed(
        runtime,
        event["channel"],
        is_private=CONVERSIONS[event["subtype"]],
        reason=f"{event['subtype']}:{event['ts']}",
        at=utcnow(),
    )


def bot_invited_back(event: dict[str, Any], context: BoltContext, runtime: Runtime) -> None:
    """The bot's own `member_joined_channel`: a person invited it (back) in."""
    if event.get("user") == context.bot_user_id:
        channel_life.channel_changed(runtime, _channel_id(event), at=utcnow(), bot_removed=False)


def register(app: App) -> None:
    for kind in ("channel", "group"):
        app.event(f"{kind}_archive")(handle_archive)
        app.event(f"{kind}_unarchive")(handle_archive)
        app.event(f"{kind}_rename")(handle_rename)
        app.event(f"{kind}_deleted")(handle_deleted)
        app.event(f"{kind}_left")(handle_bot_removed)
