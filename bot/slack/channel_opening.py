"""Opening an incident's channel (the outbox's `channel` rows): a new channel per incident, whose name
never lands the incident in a channel that is not its own.

`conversations.create` answers `name_taken` for a name any channel has (archived ones included). That
channel may be another incident's (two PagerDuty accounts, same number and title), a person's, or this
incident's own, created by an earlier attempt whose answer was lost. Only the last is joined: the row was
tried before, the bot created the channel, and no incident has it. Otherwise the next free variant
(`-2`, `-3` ...) is created."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.incidents import channel_name_variants
from bot.slack.channels import ChannelDirectory, is_channel_id


class NoFreeChannelName(RuntimeError):
    """Every variant of the name is taken (retried by the outbox, then parked)."""


def open_channel(
    client: WebClient,
    channels: ChannelDirectory,
    name: str,
    *,
    create: bool,
    retried: bool,
    unclaimed: Callable[[str], bool],
) -> dict[str, Any]:
    """{id, name, is_private} of the channel opened for a row. `create`: a new channel named `name` (or a
    variant); else the existing channel `name` (a name or an id) is joined. `unclaimed(channel_id)`: no
    incident has that channel yet."""
    name = name.strip().lstrip("#")
    if not create or is_channel_id(name):
        return join_channel(client, channels, name)
    for candidate in channel_name_variants(name):
        try:
            created = client.conversations_create(name=candidate, is_private=False)["channel"]
        except SlackApiError as exc:
            if exc.response.get("error") != "name_taken":
                raise
            if retried and _lost_own_channel(client, channels, candidate, unclaimed):
                return join_channel(client, channels, candidate)
            continue
        channels.remember(candidate, created["id"])
        return {"id": created["id"], "name": created["name"], "is_private": False}
    raise NoFreeChannelName(f"every name from #{name} to #{candidate} is taken")


def _lost_own_channel(
    client: WebClient, channels: ChannelDirectory, name: str, unclaimed: Callable[[str], bool]
) -> bool:
    """The channel `name` was created by the bot and no incident has it: an earlier attempt of this row
    created it and lost the answer."""
    channel_id = channels.resolve(name)
    creator = client.conversations_info(channel=channel_id)["channel"].get("creator")
    return creator == client.auth_test()["user_id"] and unclaimed(channel_id)


def join_channel(client: WebClient, channels: ChannelDirectory, name: str) -> dict[str, Any]:
    channel_id = channels.resolve(name)
    try:
        joined = client.conversations_join(channel=channel_id)["channel"]
    except SlackApiError as exc:
        # Slack: a private channel is joined only by invitation; the bot can see it, so it is in it.
        if exc.response.get("error") != "method_not_supported_for_channel_type":
            raise
        info = client.conversations_info(channel=channel_id)["channel"]
        return {"id": channel_id, "name": info.get("name", name), "is_private": True}
    return {"id": channel_id, "name": joined.get("name", name), "is_private": bool(joined.get("is_private"))}
