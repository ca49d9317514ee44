"""Channels changing under the bot (bot/domain/channels.py keeps what it learned): archived, unarchived,
renamed, deleted, made private or public, the bot removed or invited back. Privacy changes reach every
public place at once: a published summary of an incident whose channel became private is withdrawn."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select

from bot.core.models import Incident
from bot.domain.channels import record_channel
from bot.domain.incidents import incident_for_channel
from bot.domain.postmortems import postmortem_for
from bot.flows.context import Runtime
from bot.slack.channels import current_privacy
from bot.slack.notices import enqueue_removal_notice, refresh_summary

# The incidents a public job may mention: the digest's chart and comparisons reach 8 weeks back, and
# incidents change after they began (resolved, documented), so the window is on their last change.
PRIVACY_CHECK_DAYS = 60
# conversations.info is Tier 3 (about 50 a minute): one refresh stays under it, newest channels first.
MAX_PRIVACY_CHECKS = 40


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


def refresh_privacy(runtime: Runtime, *, at: datetime) -> int:
    """Before a scheduled job posts in public: ask Slack (`conversations.info`) whether the channels of
    recent public incidents are still public. One made private while its event was missed becomes private
    here, as if the event had come (its summary withdrawn); one the bot cannot see counts as private; when
    Slack cannot be asked, the last known state stands. Returns how many channels turned private."""
    since = at - timedelta(days=PRIVACY_CHECK_DAYS)
    newest = func.max(Incident.updated_at)
    with runtime.read() as session:
        statement = (
            select(Incident.channel_id, newest)
            .where(
                col(Incident.channel_id).is_not(None),
                col(Incident.channel_is_private).is_(False),
                # Changed lately: triggered, answered, resolved, documented (each moves updated_at).
                col(Incident.updated_at) >= since,
            )
            .group_by(col(Incident.channel_id))
            .order_by(newest.desc())
            .limit(MAX_PRIVACY_CHECKS)
        )
        channels = [channel for channel, _ in session.exec(statement) if channel]
    turned = 0
    for channel_id in channels:
        if current_privacy(runtime.client, channel_id) is True:
            privacy_changed(runtime, channel_id, is_private=True, reason=f"private:{at.isoformat()}", at=at)
            turned += 1
    return turned
