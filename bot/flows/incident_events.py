"""A PagerDuty event, as the delivery processor applies it: the incident and its timeline change
(bot/domain/pagerduty_lifecycle.py), and the bot posts about it with the same rule as a slash command
(`announce_change`): the card follows, a resolution prompts the post-mortem, a new incident is owed its
channel, a reopen after publication asks for a review. Events that arrived before their incident are
replayed once it exists, and given up after `NOTE_WAIT`."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.core.config import Settings
from bot.core.models import InboundDelivery, Incident
from bot.domain.deliveries import recheck_waiting_at, waiting_deliveries
from bot.domain.incidents import deserves_channel, owes_postmortem
from bot.domain.owners import owe_lookup
from bot.domain.pagerduty import SOURCE, EventType, Outcome, PagerDutyEvent, parse_event
from bot.domain.pagerduty_lifecycle import (
    NOTE_WAIT,
    Applied,
    apply_to_records,
    gave_up_reason,
    waiting_reason,
)
from bot.domain.reviews import flag_for_review
from bot.flows.incidents import announce_change
from bot.slack.notices import enqueue_incident_channel, refresh_summary
from bot.slack.pagerduty_notices import enqueue_invitations, enqueue_review_request, enqueue_triage


def process_delivery(
    *, session: Session, delivery: InboundDelivery, settings: Settings, at: datetime
) -> Outcome:
    """Apply a stored delivery (locked by the caller) and mark it processed, in the caller's transaction;
    one whose incident is not known yet is marked waiting instead (its incident replays it), and after
    `NOTE_WAIT` it is marked processed with the reason it was given up (nothing waits forever)."""
    event = parse_event(delivery.body.encode())
    outcome = apply_event(session=session, event=event, settings=settings, at=at)
    if outcome == Outcome.WAITING and at - delivery.received_at >= NOTE_WAIT:
        outcome = Outcome.ABANDONED
        delivery.processed_at = at
        delivery.error = gave_up_reason(event.account, event.incident_id or "")
    elif outcome == Outcome.WAITING:
        delivery.error = waiting_reason(event.account, event.incident_id or "")
        delivery.next_attempt_at = min(recheck_waiting_at(delivery, at=at), delivery.received_at + NOTE_WAIT)
    else:
        delivery.processed_at = at
        delivery.error = None
    session.add(delivery)
    return outcome


def apply_event(*, session: Session, event: PagerDutyEvent, settings: Settings, at: datetime) -> Outcome:
    """Update the incident, its timeline and its Slack card from one event."""
    applied = apply_to_records(session=session, event=event, at=at)
    if not isinstance(applied, Applied):
        return applied
    incident = applied.incident
    if settings.pagerduty_api_token and incident.service_id:
        # Its owner is named on the card once the owner lookup has asked PagerDuty (docs/service-owners.md).
        owe_lookup(session, service_id=incident.service_id, at=at)
    reason = f"pagerduty:{event.id}"
    if event.event_type == EventType.REOPENED:
        # Even one delivered after the resolution that followed it: what was published may be wrong.
        ask_for_review(session, incident, settings=settings, at=at, reason=reason)
    announce_change(
        session, incident, settings=settings, at=at, resolved_now=applied.resolved_now, reason=reason
    )
    enqueue_invitations(
        session=session, incident=incident, people=applied.new_people, settings=settings, at=at
    )
    if incident.channel_id is None and owes_postmortem(incident):
        # Owed once it deserves one: at once, or when a later event raises its priority or urgency.
        if deserves_channel(
            incident, urgencies=settings.channel_urgencies, priorities=settings.channel_priorities
        ):
            enqueue_incident_channel(session=session, incident=incident, settings=settings, at=at)
        elif applied.opens_channel:
            enqueue_triage(session=session, incident=incident, settings=settings, at=at)
    if applied.created:
        for waiting in waiting_deliveries(
            session,
            source=SOURCE,
            reason=waiting_reason(incident.pagerduty_account, incident.pagerduty_id or ""),
        ):
            process_delivery(session=session, delivery=waiting, settings=settings, at=at)
    return Outcome.PROCESSED


def ask_for_review(
    session: Session, incident: Incident, *, settings: Settings, at: datetime, reason: str
) -> None:
    """A reopened incident's published post-mortem is flagged for review (bot/domain/reviews.py); the
    summary shows it and the channel is asked, once per reopen (keyed by the event)."""
    postmortem = flag_for_review(session=session, incident=incident, at=at)
    if postmortem is None:
        return
    enqueue_review_request(session=session, incident=incident, at=at, reason=reason)
    refresh_summary(
        session=session,
        incident=incident,
        postmortem=postmortem,
        settings=settings,
        reason=f"review:{reason}",
        at=at,
    )
