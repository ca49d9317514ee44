"""Incident flows: declared by hand, resolved by hand, answered by a person, a message added to the
timeline, and its channel opened. PagerDuty's events go through bot/flows/incident_events.py, which
announces changes with the same `announce_change`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from bot.core.clock import utcnow
from bot.core.config import Settings
from bot.core.errors import UserError
from bot.core.models import Incident
from bot.domain.deliveries import archive_delivery, was_delivered
from bot.domain.incidents import (
    answered_incident,
    capture_message,
    declare_incident,
    display_id,
    get_incident,
    incident_for_channel,
    owes_postmortem,
    record_first_response,
    resolve_incident,
)
from bot.domain.postmortems import postmortem_for
from bot.domain.retention import SLACK, follow_delete, follow_edit
from bot.flows.context import Runtime
from bot.flows.postmortems import republish
from bot.slack.notices import (
    enqueue_incident_card,
    enqueue_incident_channel,
    enqueue_resolve_prompt,
    incident_of_card,
)
from bot.slack.pagerduty_notices import enqueue_announcement, enqueue_invitations, enqueue_triage

# Slack events are recorded under their event_id (source SLACK): Slack retries one it thinks was not
# received (`X-Slack-Retry-Num`, up to 3 times), and an id seen before changes nothing.


def slack_ts_to_datetime(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def announce_change(
    session: Session,
    incident: Incident,
    *,
    settings: Settings,
    at: datetime,
    resolved_now: bool = False,
    reason: str | None = None,
) -> None:
    """The rule for every incident change: the card and the announcement follow, and a resolution also
    posts the prompt to write the post-mortem (one message per incident, following a reopen after)."""
    enqueue_incident_card(session=session, incident=incident, settings=settings, at=at, reason=reason)
    enqueue_announcement(session=session, incident=incident, settings=settings, at=at)
    enqueue_resolve_prompt(session=session, incident=incident, at=at, first=resolved_now)


def declare(runtime: Runtime, *, channel: dict[str, Any], title: str, user_id: str, at: datetime) -> str:
    """`/postmortem new <title>`: an incident in this channel, its timings starting now. Returns its ref."""
    with runtime.change() as session:
        incident = declare_incident(
            session=session,
            title=title,
            channel_id=channel["id"],
            channel_name=channel.get("name"),
            channel_is_private=channel.get("is_private", False),
            declared_by=user_id,
            at=at,
        )
        announce_change(session, incident, settings=runtime.settings, at=at)
        return display_id(incident)


def resolve(runtime: Runtime, *, channel_id: str, at: datetime) -> tuple[str, int | None]:
    """`/postmortem resolve`: the channel's incident resolved now. Returns (ref, seconds to resolve)."""
    with runtime.change() as session:
        incident = incident_for_channel(session=session, channel_id=channel_id)
        if incident is None:
            raise UserError(
                "This channel isn't linked to an incident. Declare one with `/postmortem new <title>`."
            )
        resolved_now = resolve_incident(incident=incident, at=at)
        if resolved_now:
            announce_change(session, incident, settings=runtime.settings, at=at, resolved_now=True)
        return display_id(incident), incident.seconds_to_resolve


def first_delivery(session: Session, body: dict[str, Any], at: datetime) -> bool:
    """Record the Slack event's id; False when Slack sent this `event_id` before (a retry): ignore it
    then. Only the id and type are kept, never what was written (bot/domain/retention.py)."""
    event_id = body.get("event_id")
    if not event_id:
        return True
    event_type = (body.get("event") or {}).get("type")
    return archive_delivery(
        session,
        source=SLACK,
        delivery_id=event_id,
        event_type=event_type,
        body=json.dumps({"event_id": event_id, "type": event_type}),
        at=at,
        processed=True,
    )


def person_spoke(
    runtime: Runtime,
    *,
    body: dict[str, Any],
    channel_id: str,
    user_id: str,
    ts: str,
    thread_ts: str | None = None,
) -> None:
    """A person's message in an incident channel: the first one during the incident it answers
    (`answered_incident`: a reply under its card, or the oldest open one) sets the time to first response."""
    at = slack_ts_to_datetime(ts)
    with runtime.change() as session:
        card_of = incident_of_card(session, channel_id=channel_id, ts=thread_ts) if thread_ts else None
        incident = answered_incident(session=session, channel_id=channel_id, at=at, card_of=card_of)
        if incident is None or not first_delivery(session, body, utcnow()):
            return
        if record_first_response(incident=incident, user_id=user_id, at=at):
            announce_change(session, incident, settings=runtime.settings, at=at)


def add_to_timeline(
    runtime: Runtime,
    *,
    incident_id: int,
    channel_id: str,
    message: dict[str, Any],
    permalink: str | None,
    event_body: dict[str, Any] | None = None,
) -> bool:
    """Put a Slack message on the incident's timeline (a :pushpin: or the shortcut). An event that caused
    this is archived in the same transaction, so a failure before it leaves Slack's retry to be processed.
    Returns True when the message was added (False: already there, or a retried event)."""
    author = message.get("user")
    with runtime.change() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or (event_body is not None and not first_delivery(session, event_body, utcnow())):
            return False
        return capture_message(
            session=session,
            incident=incident,
            channel_id=channel_id,
            ts=message["ts"],
            occurred_at=slack_ts_to_datetime(message["ts"]),
            author=f"<@{author}>" if author else (message.get("username") or None),
            text=message.get("text") or "",
            permalink=permalink,
            at=utcnow(),
        )


def channel_opened(
    session: Session, payload: dict[str, Any], channel: dict[str, Any], *, settings: Settings
) -> None:
    """The outbox opened the incident's channel (its `on_channel` hook, inside the transaction that marks
    the row sent): remember it, and post the card with everything known so far and, when the incident
    resolved meanwhile, the write-up prompt."""
    incident = session.exec(
        select(Incident).where(Incident.id == payload["incident_id"]).with_for_update()
    ).first()
    if incident is None:
        return
    now = utcnow()
    incident.channel_id = channel["id"]
    incident.channel_name = channel["name"][:80]
    incident.channel_is_private = bool(channel.get("is_private"))
    session.add(incident)
    session.flush()
    announce_change(
        session,
        incident,
        settings=settings,
        at=now,
        resolved_now=incident.resolved_at is not None and owes_postmortem(incident),
        reason="channel",
    )
    enqueue_invitations(
        session=session, incident=incident, people=incident.pagerduty_people, settings=settings, at=now
    )
    enqueue_triage(
        session=session,
        incident=incident,
        settings=settings,
        at=now,
        opened_by=payload.get("opened_by"),
        only_if_listed=True,
    )


def person_matched(session: Session, payload: dict[str, Any], slack_user: str, *, settings: Settings) -> None:
    """The outbox found a PagerDuty person's Slack user by e-mail (inside the transaction that marks the
    invitation sent): remembered on the incident, so its card mentions them while they are assigned."""
    incident = session.exec(
        select(Incident).where(Incident.id == payload["incident_id"]).with_for_update()
    ).first()
    if incident is None:
        return
    person_id = payload["pagerduty_user"]
    incident.pagerduty_people = [
        {**person, "slack_user": slack_user} if person["id"] == person_id else person
        for person in incident.pagerduty_people
    ]
    session.add(incident)
    if person_id in incident.pagerduty_assignees:
        announce_change(session, incident, settings=settings, at=utcnow(), reason=f"matched:{person_id}")


def open_channel_on_request(runtime: Runtime, *, incident_id: int, user_id: str, at: datetime) -> None:
    """ "Open a channel" on an incident listed in TRIAGE_CHANNEL: its channel is owed after all, and the
    listing says who asked."""
    with runtime.change() as session:
        incident = get_incident(session=session, incident_id=incident_id)
        if incident.channel_id is not None:
            return
        enqueue_incident_channel(
            session=session, incident=incident, settings=runtime.settings, at=at, opened_by=user_id
        )
        enqueue_triage(
            session=session, incident=incident, settings=runtime.settings, at=at, opened_by=user_id
        )


def incident_in_channel(runtime: Runtime, channel_id: str) -> Incident | None:
    with runtime.read() as session:
        return incident_for_channel(session=session, channel_id=channel_id)


def incident_by_id(runtime: Runtime, incident_id: int) -> Incident:
    with runtime.read() as session:
        return get_incident(session=session, incident_id=incident_id)


def message_edited(runtime: Runtime, *, channel_id: str, ts: str, text: str, at: datetime) -> None:
    """Slack's message_changed: a timeline entry of that message says what it says now, and so does a
    published post-mortem's document and summary."""
    with runtime.change() as session:
        incident_id = follow_edit(session, channel_id=channel_id, ts=ts, text=text)
        _timeline_changed(
            runtime, session, incident_id, reason=f"edited:{channel_id}:{ts}:{at.isoformat()}", at=at
        )


def message_deleted(runtime: Runtime, *, channel_id: str, ts: str, at: datetime) -> None:
    """Slack's message_deleted: a timeline entry of that message goes too, from a published post-mortem's
    document and summary as well (docs/retention.md)."""
    with runtime.change() as session:
        incident_id = follow_delete(session, channel_id=channel_id, ts=ts)
        _timeline_changed(runtime, session, incident_id, reason=f"deleted:{channel_id}:{ts}", at=at)


def _timeline_changed(
    runtime: Runtime, session: Session, incident_id: int | None, *, reason: str, at: datetime
) -> None:
    incident = session.get(Incident, incident_id) if incident_id is not None else None
    postmortem = postmortem_for(session=session, incident=incident) if incident else None
    if incident is not None and postmortem is not None:
        republish(
            runtime,
            session,
            incident,
            postmortem,
            reason=reason,
            at=at,
        )


def seen_before(runtime: Runtime, body: dict[str, Any]) -> bool:
    """True when Slack delivered this event before (its retry changes nothing)."""
    with runtime.read() as session:
        return was_delivered(session, source=SLACK, delivery_id=body.get("event_id") or "")
