"""A service's owner, as PagerDuty answered the owner lookup (bot/runtime/owner_lookups.py): stored, and
the cards of the service's recent incidents updated when it changed what they show."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.core.config import Settings
from bot.core.models import Incident
from bot.domain.owners import Owner, configured_owner, record_lookup
from bot.slack.notices import enqueue_incident_card

# The cards updated when a service's owner becomes known or changes: those of its incidents that changed
# in the last week (a lookup retried through a PagerDuty outage still reaches the incident that asked).
CARD_REFRESH = timedelta(days=7)


def owner_looked_up(
    session: Session, *, settings: Settings, service_id: str, found: Owner | None, at: datetime
) -> None:
    if not record_lookup(session, service_id=service_id, found=found, at=at):
        return
    # Locked, with or without a channel yet: a channel opening at this moment (another transaction setting
    # `channel_id` and rendering the card before this answer is committed) waits for this transaction, or
    # this one for it, so its card is rendered with the owner or updated here (PostgreSQL, READ COMMITTED).
    incidents = session.exec(
        select(Incident)
        .where(Incident.service_id == service_id, col(Incident.updated_at) >= at - CARD_REFRESH)
        .with_for_update()
    ).all()
    for incident in (found for found in incidents if found.channel_id):
        shown = configured_owner(
            settings.service_owners, service_id=service_id, service_name=incident.service_name
        )
        if shown is None:  # SERVICE_OWNERS wins: its cards show the same owner as before
            enqueue_incident_card(
                session=session,
                incident=incident,
                settings=settings,
                at=at,
                reason=f"owner:{service_id}:{at.isoformat()}",
            )
