"""Channels changing under the bot (bot/domain/channels.py keeps what it learned): archived, unarchived,
renamed, deleted, made private or public, the bot removed or invited back. Privacy changes reach every
public place at once: a published summary of an incident whose channel became private is withdrawn."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select

from bot.core.models import Incident
from bot.domain.channels import record_channel
from bot.domain.incidents import incident_for_channel
from bot.domain.postmortems import postmortem_for
from bot.flows.context import Runtime
from bot.slack.notices import enqueue_removal_notice, refresh_summary


def channel_changed(
    runtime: Runtime,
    channel_id: str,
    *,
    at: datetime,
    name: str | None = None,
    is_archived: bool | None = None,
    is_deleted: bool | None = None,
    bot_removed: bool | None = None,
) -> None:
    """Remember an archive, unarchive, rename, deletion, or the bot invited back (`bot_removed=False`)."""
    with runtime.change() as session:
        record_channel(
            session,
            channel_id,
            at=at,
            name=name,
            is_archived=is_archived,
            is_deleted=is_deleted,
            bot_removed=bot_removed,
        )


def privacy_changed(
    runtime: Runtime, channel_id: str, *, is_private: bool, reason: str, at: datetime
) -> None:
    """The channel was made private (or public): its incidents follow, and each published summary is
    updated in place (withdrawn when the incident is no longer shown publicly)."""
    settings = runtime.settings
    with runtime.change() as session:
        record_channel(session, channel_id, at=at, is_private=is_private)
        for incident in session.exec(select(Incident).where(Incident.channel_id == channel_id)):
            postmortem = postmortem_for(session=session, incident=incident)
            if postmortem is not None:
                refresh_summary(
                    session=session,
                    incident=incident,
                    postmortem=postmortem,
                    settings=settings,
                    reason=reason,
                    at=at,
                )


def bot_removed(runtime: Runtime, channel_id: str, *, actor_id: str | None, at: datetime) -> None:
    """A person removed the bot from a channel: it stays out (never joins again by itself) and tells that
    person, once, where it will post about the channel's incident instead."""
    runtime.participants.forget(channel_id)
    settings = runtime.settings
    with runtime.change() as session:
        record_channel(session, channel_id, at=at, bot_removed=True)
        incident = incident_for_channel(session=session, channel_id=channel_id)
        if incident is None or not actor_id:
            return
        postmortem = postmortem_for(session=session, incident=incident)
        enqueue_removal_notice(
            session=session,
            incident=incident,
            postmortem=postmortem,
            channel_id=channel_id,
            person=actor_id,
            settings=settings,
            at=at,
        )
