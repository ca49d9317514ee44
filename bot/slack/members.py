"""Who is in an incident's channel (conversations.members): the lookup behind the authorization check
(bot/flows/access.py)."""

from __future__ import annotations

from slack_sdk import WebClient


def channel_members(client: WebClient, channel_id: str | None) -> set[str]:
    """The incident's participants: the members of its channel (all pages)."""
    if not channel_id:
        return set()
    members: set[str] = set()
    cursor = None
    while True:
        page = client.conversations_members(channel=channel_id, limit=200, cursor=cursor)
        members.update(page.get("members") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return members
