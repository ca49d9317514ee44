"""Resolve channel names to ids and join the public channels the bot posts to.

Settings accept a name (`postmortems`, `#postmortems`) or an id (`C0123ABCD`); Slack's API wants ids,
and `chat.postMessage` to a public channel fails with `not_in_channel` until the bot has joined it.
"""

from __future__ import annotations

import re
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.core.errors import UserError

# Channel names are lower-case, so an upper-case id never collides with a name.
_ID = re.compile(r"^[CGDU][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


class ChannelNotFound(UserError):
    pass


def is_channel_id(value: str) -> bool:
    return bool(_ID.match(value))


def is_user_id(value: str) -> bool:
    """A person (U…, W… on Enterprise Grid): a message "to" them goes to the app's DM with them."""
    return bool(_USER_ID.match(value))


def channel_mention(name_or_id: str) -> str:
    """`<#C123>` renders as a link in Slack; a configured name is shown as `#name`."""
    value = name_or_id.strip().lstrip("#")
    return f"<#{value}>" if is_channel_id(value) else f"#{value}"


class ChannelDirectory:
    """A thread-safe name -> id cache over `conversations.list`."""

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def resolve(self, name_or_id: str) -> str:
        """The channel id for a configured name or id; DMs (user ids) pass through."""
        value = name_or_id.strip().lstrip("#")
        if is_channel_id(value):
            return value
        with self._lock:
            if value not in self._ids:
                self._refresh()
            if value not in self._ids:
                raise ChannelNotFound(f"Channel #{value} does not exist, or the bot cannot see it.")
            return self._ids[value]

    def remember(self, name: str, channel_id: str) -> None:
        with self._lock:
            self._ids[name] = channel_id

    def join(self, channel_id: str) -> None:
        self._client.conversations_join(channel=channel_id)

    def _refresh(self) -> None:
        cursor = None
        while True:
            page = self._client.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=200, cursor=cursor
            )
            for channel in page["channels"]:
                self._ids[channel["name"]] = channel["id"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return


# What conversations.info answers for a channel the bot cannot see (any more).
_UNSEEN = {"channel_not_found", "not_in_channel", "missing_scope"}


def current_privacy(client: WebClient, channel_id: str) -> bool | None:
    """Whether the channel is private now, from `conversations.info`: one the bot cannot see counts as
    private. None when Slack could not be asked (the last known state then stands)."""
    try:
        channel = client.conversations_info(channel=channel_id)["channel"]
    except SlackApiError as exc:
        return True if exc.response.get("error") in _UNSEEN else None
    except (SlackRequestError, OSError):
        return None
    return bool(channel.get("is_private"))
