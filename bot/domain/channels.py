"""Channels change under the bot: people archive, unarchive, rename, convert to private and delete them,
and remove the bot. What the bot last learned is kept per channel (SlackChannel), and a channel's privacy
is copied onto its incidents, so everything public (`incidents.shown_publicly`) follows the current state.

No Slack here: the callers pass what Slack said.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, update

from bot.core.models import Incident, SlackChannel


def channel_state(session: Session, channel_id: str) -> SlackChannel | None:
    return session.get(SlackChannel, channel_id)


def record_channel(
    session: Session,
    channel_id: str,
    *,
    at: datetime,
    name: str | None = None,
    is_private: bool | None = None,
    is_archived: bool | None = None,
    is_deleted: bool | None = None,
    bot_removed: bool | None = None,
) -> SlackChannel:
    """Remember what Slack said of a channel (None: unchanged). A name or privacy also goes to the
    incidents whose channel it is. Returns the channel's state after the change."""
    state = session.get(SlackChannel, channel_id, with_for_update=True)
    if state is None:
        state = SlackChannel(id=channel_id, updated_at=at)
        session.add(state)
    changes = {
        "name": name,
        "is_private": is_private,
        "is_archived": is_archived,
        "is_deleted": is_deleted,
        "bot_removed": bot_removed,
    }
    for field, value in changes.items():
        if value is not None:
            setattr(state, field, value)
    state.updated_at = at
    on_incidents: dict[str, str | bool] = {}
    if name is not None:
        on_incidents["channel_name"] = name[:80]
    if is_private is not None:
        on_incidents["channel_is_private"] = is_private
    if on_incidents:
        session.execute(update(Incident).where(col(Incident.channel_id) == channel_id).values(**on_incidents))
    session.flush()
    return state


def reachable(state: SlackChannel | None) -> bool:
    """Whether the bot may post in the channel: not archived, not deleted, and not removed from it."""
    return state is None or not (state.is_archived or state.is_deleted or state.bot_removed)
