"""What each PagerDuty V3 incident event does to the incident and its timeline (docs/pagerduty.md has the
table). No Slack here: bot/flows/incident_events.py posts about the outcome.

Identity: an incident is its PagerDuty id within its account (`PagerDutyEvent.account`), never its
number, which two accounts both use.

Order: deliveries come late, twice and out of order (docs/architecture.md, "PagerDuty"). Every event
becomes a timeline entry keyed by its event id, and the status and the resolution are settled from those
entries, not from the last delivery: the resolution that counts is the earliest one after the latest
reopen, and the status is that resolution, else the latest acknowledge/unacknowledge after the latest
reopen. A late, older delivery therefore never moves an incident backwards, and a later reopen is not
"backwards". The first acknowledgement keeps counting for the time to acknowledge (earliest wins).

Record only: an incident first seen already resolved (a bulk resolve of incidents the bot never saw), or
whose start is in the future or far older than its event, is kept for the record with the reason, and
gets no channel, no prompt and no place in the KPIs. A `triggered` event arriving later for one first
seen resolved (the two crossed) makes it a live incident after all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from bot.core.db import insert_ignoring_duplicates
from bot.core.models import Incident, IncidentStatus, TimelineEntry
from bot.domain.incidents import acknowledge_incident, earliest, owes_postmortem, refresh_durations
from bot.domain.pagerduty import EventType, Outcome, PagerDutyEvent, parse_instant
from bot.domain.pagerduty_text import timeline_text

# A PagerDuty clock ahead of ours by more than this makes an instant "in the future".
CLOCK_SKEW = timedelta(minutes=5)
# An incident first seen through an event this long after it started is history, not something to
# gather people for (and its durations would only distort the KPIs).
OLDEST_FIRST_SEEN = timedelta(days=30)
# PagerDuty retries a delivery for up to 48 hours, so an incident's own events all arrive within that
# of a note about it: a note still waiting after this will never find its incident.
NOTE_WAIT = timedelta(hours=48)

FIRST_SEEN_RESOLVED = "first seen already resolved"
MERGE_RESOLVE_REASON = "merge_resolve_reason"
# The timeline kinds the status and the resolution are settled from.
_STATUS_KINDS = ("triggered", "acknowledged", "unacknowledged", "resolved", "reopened")
_STATUS_EVENTS = {f"incident.{kind}" for kind in _STATUS_KINDS}


@dataclass(frozen=True)
class Applied:
    """An event applied to the records. `opens_channel`: the incident is new (or became live) and owed its
    channel; `created`: this event created it (notes that waited for it are replayed); `resolved_now`: it
    became resolved and is owed the write-up prompt; `new_people`: PagerDuty users this event put on the
    incident for the first time (to invite)."""

    incident: Incident
    created: bool
    opens_channel: bool
    resolved_now: bool
    new_people: list[dict[str, str]]


def waiting_reason(account: str, pagerduty_id: str) -> str:
    return f"waiting for incident {pagerduty_id} of {account or 'an unknown account'}"


def gave_up_reason(account: str, pagerduty_id: str) -> str:
    hours = int(NOTE_WAIT.total_seconds() // 3600)
    return f"incident {pagerduty_id} of {account or 'an unknown account'} never arrived within {hours} h"


def apply_to_records(*, session: Session, event: PagerDutyEvent, at: datetime) -> Applied | Outcome:
    """Update the incident and its timeline from one event: Applied, or IGNORED (not an incident event
    the bot tracks) or WAITING (an event without the incident, about one not seen yet)."""
    pagerduty_id = event.incident_id
    if event.resource_type != "incident" or event.event_type not in EventType.__members__.values():
        return Outcome.IGNORED
    if pagerduty_id is None:
        return Outcome.IGNORED
    incident = _locked_incident(session, event.account, pagerduty_id)
    created = revived = False
    if incident is None:
        if event.incident is None:
            return Outcome.WAITING
        incident, created = _create_incident(session, event, at=at)
    was_resolved = incident.status == IncidentStatus.RESOLVED
    new_people = _add_people(incident, event)
    if not created:
        revived = event.event_type == EventType.TRIGGERED and incident.recorded_only == FIRST_SEEN_RESOLVED
        if revived:
            incident.recorded_only = None
        _apply_to_incident(session, incident, event, at=at, first=False)
    _add_timeline_entry(session, incident, event, at=at)
    if event.event_type in _STATUS_EVENTS or created:
        _settle_status(session, incident, at=at)
    session.add(incident)
    session.flush()
    _settle_service_name(session, incident)
    resolved = incident.status == IncidentStatus.RESOLVED
    with_channel = created or revived
    return Applied(
        incident=incident,
        created=created,
        opens_channel=(created and incident.recorded_only is None) or revived,
        # A new or revived incident's prompt comes with its channel (bot.flows.incidents.channel_opened).
        resolved_now=resolved and not was_resolved and not with_channel and owes_postmortem(incident),
        new_people=new_people,
    )


def _add_people(incident: Incident, event: PagerDutyEvent) -> list[dict[str, str]]:
    """Record the assignees (any event carrying the incident) and an added responder; returns the ones
    not on the incident before."""
    people = [event.data.get("user")] if event.event_type == EventType.RESPONDER_ADDED else []
    people += (event.incident or {}).get("assignees") or []
    known = {person["id"] for person in incident.pagerduty_people}
    new: list[dict[str, str]] = []
    for person in people:
        person_id, name = _str((person or {}).get("id")), _str((person or {}).get("summary"))
        if person_id and person_id not in known:
            known.add(person_id)
            new.append({"id": person_id[:64], "name": (name or person_id)[:255]})
    if new:
        incident.pagerduty_people = [*incident.pagerduty_people, *new]  # a new list: the JSON column is saved
    return new


def _locked_incident(session: Session, account: str, pagerduty_id: str) -> Incident | None:
    statement = (
        select(Incident)
        .where(Incident.pagerduty_account == account, Incident.pagerduty_id == pagerduty_id)
        .with_for_update()
    )
    return session.exec(statement).first()


def _triggered_instant(event: PagerDutyEvent) -> datetime:
    """The incident's start: `data.created_at`, which every incident event carries with the same value,
    so the instant does not depend on which event arrives first. Without it, the `incident.triggered`
    event's own `occurred_at` (any other event's `occurred_at` is only an upper bound, corrected by the
    earliest-wins rule when a better value arrives)."""
    data = event.incident or {}
    return parse_instant(data.get("created_at")) or event.occurred_at


def _record_only_reason(event: PagerDutyEvent, triggered_at: datetime, at: datetime) -> str | None:
    """Why a new incident is kept for the record only, or None for a live one."""
    if triggered_at > min(at, event.occurred_at) + CLOCK_SKEW:
        return f"starts in the future ({triggered_at.isoformat()})"
    if event.occurred_at - triggered_at > OLDEST_FIRST_SEEN:
        return f"first seen over {OLDEST_FIRST_SEEN.days} days after it started"
    if event.event_type == EventType.RESOLVED or (event.incident or {}).get("status") == "resolved":
        return FIRST_SEEN_RESOLVED
    return None


def _create_incident(session: Session, event: PagerDutyEvent, *, at: datetime) -> tuple[Incident, bool]:
    """Insert the incident with the event already applied (one INSERT); on a concurrent insert of the same
    incident, apply the event to the winner's row. Returns (incident, created)."""
    data = event.incident or {}
    triggered_at = _triggered_instant(event)
    incident = Incident(
        pagerduty_id=event.incident_id,
        pagerduty_account=event.account,
        number=data.get("number") if isinstance(data.get("number"), int) else None,
        title=(_str(data.get("title")) or _str(data.get("summary")) or "Untitled incident")[:1024],
        triggered_at=triggered_at,
        recorded_only=_record_only_reason(event, triggered_at, at),
        created_at=at,
        updated_at=at,
    )
    _apply_to_incident(None, incident, event, at=at, first=True)
    try:
        with session.begin_nested():
            session.add(incident)
    except IntegrityError:
        existing = _locked_incident(session, event.account, event.incident_id or "")
        assert existing is not None
        return existing, False
    return incident, True


def _apply_to_incident(
    session: Session | None, incident: Incident, event: PagerDutyEvent, *, at: datetime, first: bool
) -> None:
    """Merge the event into the incident. `first`: the incident is new (not stored yet), so this event is
    the newest seen and no timeline needs reading."""
    if event.incident is not None:
        newest = None if first or session is None else _newest_event_instant(session, incident)
        _merge_incident_data(incident, event, describe=first or newest is None or event.occurred_at >= newest)
    if event.event_type == EventType.ACKNOWLEDGED:
        acknowledge_incident(incident=incident, at=event.occurred_at)
    if event.event_type == EventType.RESOLVED:
        merged_into = _merged_into(event.data)
        incident.merged_into = merged_into or incident.merged_into
    incident.updated_at = max(incident.updated_at, at)


def _merged_into(data: dict[str, Any]) -> str | None:
    """The surviving incident's id when `resolve_reason` says PagerDuty merged this one into it."""
    reason = data.get("resolve_reason")
    if not isinstance(reason, dict) or reason.get("type") != MERGE_RESOLVE_REASON:
        return None
    survivor = reason.get("incident")
    survivor_id = _str(survivor.get("id")) if isinstance(survivor, dict) else None
    return survivor_id[:64] if survivor_id else None


def _merge_incident_data(incident: Incident, event: PagerDutyEvent, *, describe: bool) -> None:
    """Instants merge by the earliest-wins rule; descriptive fields come from the newest event only, so a
    late, older delivery cannot roll back a priority change."""
    data = event.incident or {}
    triggered = earliest(incident.triggered_at, _triggered_instant(event))
    if triggered != incident.triggered_at:
        incident.triggered_at = triggered
        refresh_durations(incident)
    if not describe:
        return
    service = data.get("service") or {}
    priority = data.get("priority") or {}
    incident.number = data["number"] if isinstance(data.get("number"), int) else incident.number
    incident.title = (_str(data.get("title")) or incident.title)[:1024]
    incident.service_id = _str(service.get("id")) or incident.service_id
    incident.service_name = (_str(service.get("summary")) or incident.service_name or "")[:255] or None
    incident.urgency = _str(data.get("urgency")) or incident.urgency
    incident.priority = (_str(priority.get("summary")) or None) if "priority" in data else incident.priority
    incident.html_url = _str(data.get("html_url")) or incident.html_url
    if isinstance(data.get("assignees"), list):  # who PagerDuty assigns it to now (reassigned, escalated...)
        assigned = (_str((person or {}).get("id")) for person in data["assignees"])
        incident.pagerduty_assignees = [person_id[:64] for person_id in assigned if person_id]


def _settle_status(session: Session, incident: Incident, *, at: datetime) -> None:
    """The status and the resolution from the incident's lifecycle entries (see the module docstring)."""
    rows = session.exec(
        select(TimelineEntry.kind, TimelineEntry.occurred_at)
        .where(TimelineEntry.incident_id == incident.id, col(TimelineEntry.kind).in_(_STATUS_KINDS))
        .order_by(col(TimelineEntry.occurred_at), col(TimelineEntry.id))
    ).all()
    reopened = max((instant for kind, instant in rows if kind == "reopened"), default=None)
    since_reopen = [(kind, instant) for kind, instant in rows if reopened is None or instant > reopened]
    resolved_at = min((instant for kind, instant in since_reopen if kind == "resolved"), default=None)
    acknowledged = [kind for kind, _ in since_reopen if kind in ("acknowledged", "unacknowledged")]
    if resolved_at is not None:
        status = IncidentStatus.RESOLVED
    elif acknowledged and acknowledged[-1] == "acknowledged":
        status = IncidentStatus.ACKNOWLEDGED
    else:
        status = IncidentStatus.TRIGGERED
    if (incident.resolved_at, incident.reopened_at, incident.status) != (resolved_at, reopened, status):
        incident.resolved_at, incident.reopened_at, incident.status = resolved_at, reopened, status
        refresh_durations(incident)
        incident.updated_at = max(incident.updated_at, at)


def _settle_service_name(session: Session, incident: Incident) -> None:
    """A service is its PagerDuty id (KPIs group by it: bot/loop/kpi_services.py). Every incident of a
    service carries the latest name delivered for it, for its card and the runbook check, and a name that
    another service has too gets the id after it (two services called "Checkout" stay two)."""
    if incident.service_id is None or incident.service_name is None:
        return
    name = incident.service_name.removesuffix(f" ({incident.service_id})")
    taken = session.exec(
        select(Incident.id)
        .where(Incident.service_name == name, col(Incident.service_id).is_distinct_from(incident.service_id))
        .limit(1)
    ).first()
    name = f"{name[: 252 - len(incident.service_id)]} ({incident.service_id})" if taken else name
    latest_other = session.exec(
        select(Incident.service_name)
        .where(Incident.service_id == incident.service_id, Incident.id != incident.id)
        .order_by(col(Incident.triggered_at).desc())
        .limit(1)
    ).first()
    incident.service_name = name
    session.add(incident)
    if latest_other is not None and latest_other != name:
        session.execute(
            update(Incident)
            .where(col(Incident.service_id) == incident.service_id, col(Incident.service_name) != name)
            .values(service_name=name)
        )


def _newest_event_instant(session: Session, incident: Incident) -> datetime | None:
    statement = select(func.max(TimelineEntry.occurred_at)).where(
        TimelineEntry.incident_id == incident.id, col(TimelineEntry.source_key).startswith("pagerduty:")
    )
    return session.exec(statement).first()


def _add_timeline_entry(session: Session, incident: Incident, event: PagerDutyEvent, *, at: datetime) -> None:
    link = _str(event.data.get("html_url")) or _str((event.data.get("incident") or {}).get("html_url"))
    insert_ignoring_duplicates(
        session,
        TimelineEntry,
        {
            "incident_id": incident.id,
            "source_key": f"pagerduty:{event.id}",
            "kind": event.event_type.removeprefix("incident.")[:32],
            "occurred_at": event.occurred_at,
            "author": (event.agent or "")[:255] or None,
            "text": timeline_text(event, merged_into=_merged_into(event.data)),
            "permalink": link,
            "created_at": at,
        },
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
