"""Who is in an incident's channel (conversations.members), and the check every post-mortem gesture runs
before it changes anything: the rule is bot/access.py's, the lookup is Slack's."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.access import require_editor
from bot.app import Runtime


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


def require_participant(
    *, runtime: Runtime, client: WebClient, user_id: str, channel_id: str | None, what: str
) -> None:
    """Raise a UserError (shown to the person) unless they are in the incident channel or an admin."""
    require_editor(
        user_id=user_id,
        channel_id=channel_id,
        admins=runtime.settings.postmortem_admins,
        cache=runtime.participants,
        load=lambda channel: channel_members(client, channel),
        what=what,
    )
