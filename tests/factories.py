"""Test data written straight into the database: incidents with their instants, post-mortems, action items."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlmodel import Session

from bot.core.models import (
    ActionItem,
    ActionItemStatus,
    Incident,
    IncidentStatus,
    Postmortem,
    PostmortemStatus,
)
from bot.domain.incidents import refresh_durations


def add_incident(
    session: Session,
    *,
    at: datetime,
    service: str | None = "checkout",
    service_id: str | None = None,
    title: str = "Something broke",
    ack: int | None = None,
    response: int | None = None,
    resolve: int | None = None,
    document: int | None = None,
    responder: str | None = "U0RESP",
    channel_id: str | None = "C0INC",
    urgency: str | None = "high",
    owner: str | None = None,
    published_by: str | None = None,
) -> Incident:
    """An incident triggered at `at`, acknowledged/responded/resolved after the given seconds, and its
    post-mortem published `document` seconds after the resolution (or drafted, when `owner` is set)."""

    def after(seconds: int | None, base: datetime | None = None) -> datetime | None:
        return None if seconds is None or (base or at) is None else (base or at) + timedelta(seconds=seconds)

    resolved_at = after(resolve)
    incident = Incident(
        title=title,
        service_name=service,
        service_id=service_id,
        urgency=urgency,
        channel_id=channel_id,
        triggered_at=at,
        acknowledged_at=after(ack),
        first_response_at=after(response),
        first_responder=responder if response is not None else None,
        resolved_at=resolved_at,
        postmortem_published_at=None
        if resolved_at is None or document is None
        else after(document, resolved_at),
        status=IncidentStatus.RESOLVED if resolve is not None else IncidentStatus.TRIGGERED,
        created_at=at,
        updated_at=at,
    )
    refresh_durations(incident)
    session.add(incident)
    session.flush()
    if incident.postmortem_published_at is not None or owner is not None:
        published = incident.postmortem_published_at
        session.add(
            Postmortem(
                incident_id=incident.id,  # type: ignore[arg-type]
                status=PostmortemStatus.PUBLISHED if published else PostmortemStatus.DRAFT,
                summary=f"Summary of {title}",
                owner_id=owner or published_by or responder,
                published_at=published,
                published_by=(published_by or owner or responder) if published else None,
                created_at=resolved_at or at,
                updated_at=published or resolved_at or at,
            )
        )
        session.flush()
    return incident


def postmortem_of(session: Session, incident: Incident) -> Postmortem:
    from sqlmodel import select

    found = session.exec(select(Postmortem).where(Postmortem.incident_id == incident.id)).first()
    if found is None:
        found = Postmortem(
            incident_id=incident.id,  # type: ignore[arg-type]
            owner_id=incident.first_responder,
            created_at=incident.triggered_at,
            updated_at=incident.triggered_at,
        )
        session.add(found)
        session.flush()
    return found


def add_action_item(
    session: Session,
    incident: Incident,
    *,
    text: str = "Fix the thing",
    owner: str | None = "U0OWNER",
    due: date | None = None,
    completed_at: datetime | None = None,
    created_at: datetime | None = None,
) -> ActionItem:
    postmortem = postmortem_of(session, incident)
    created = created_at or incident.triggered_at
    item = ActionItem(
        postmortem_id=postmortem.id,  # type: ignore[arg-type]
        incident_id=incident.id,  # type: ignore[arg-type]
        text=text,
        owner_id=owner,
        due_date=due,
        status=ActionItemStatus.DONE if completed_at else ActionItemStatus.OPEN,
        completed_at=completed_at,
        completed_by=owner if completed_at else None,
        created_at=created,
        updated_at=completed_at or created,
    )
    session.add(item)
    session.flush()
    return item
