"""Action item flows: marked done (by its owner, a participant or an admin), and a reminder snoozed."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient

from bot.core.errors import UserError
from bot.core.models import ActionItem, Incident
from bot.domain.action_items import complete_action_item
from bot.domain.postmortems import postmortem_for
from bot.flows.access import participants_seen_by
from bot.flows.context import Runtime
from bot.flows.postmortems import republish
from bot.loop.reminders import snooze
from bot.trackers.links import owe_sync

GONE = "That action item no longer exists (the post-mortem was edited)."


def mark_done(runtime: Runtime, client: WebClient, *, item_id: int, user_id: str, at: datetime) -> bool:
    """ "Mark done": the item closes, and the post-mortem's document and summary follow. Returns False
    when it already was done (a second click changes nothing)."""
    with runtime.read() as session:
        item = session.get(ActionItem, item_id)
        incident = session.get(Incident, item.incident_id) if item else None
        if item is None or incident is None:
            raise UserError(GONE)
        owner, channel_id = item.owner_id, incident.channel_id
    # The owner needs no member lookup; anyone else is judged against the channel's members.
    participants = (
        frozenset()
        if owner == user_id
        else participants_seen_by(runtime, client, channel_id=channel_id, user_id=user_id)
    )
    with runtime.change() as session:
        item = session.get(ActionItem, item_id)
        incident = session.get(Incident, item.incident_id) if item else None
        postmortem = postmortem_for(session=session, incident=incident) if incident else None
        if item is None or incident is None or postmortem is None:
            raise UserError(GONE)
        done = complete_action_item(
            session=session,
            item=item,
            user_id=user_id,
            participants=participants,
            admins=runtime.settings.postmortem_admins,
            at=at,
        )
        if done:
            owe_sync(session, [item], tracker=runtime.settings.action_item_tracker, at=at)
            republish(
                runtime,
                session,
                incident,
                postmortem,
                reason=f"action:{item.id}:done",
                at=at,
            )
        return done


def snooze_reminder(runtime: Runtime, *, target: str, user_id: str, at: datetime) -> datetime:
    """The snooze button on a reminder: no nudges about that thing for a day. Returns until when."""
    with runtime.change() as session:
        return snooze(session=session, target=target, user_id=user_id, at=at)
