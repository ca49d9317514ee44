"""PagerDuty Webhooks V3: signatures, parsing, and the incident lifecycle they drive. No Slack here: what the
bot posts about an event is bot/flows/incident_events.py's.

PagerDuty's delivery model (docs/architecture.md, "PagerDuty") shapes everything below: one event per
delivery, delivered at least once (retried for up to 48 h), ordered only loosely per incident. So every
delivery is archived under its event id before it is processed (a repeat changes nothing), each lifecycle
instant keeps the earliest value seen, and an incident never moves backwards (an `acknowledged` after
`resolved` records the instant but leaves the status resolved)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from bot.core.db import insert_ignoring_duplicates
from bot.core.models import Incident, TimelineEntry
from bot.domain.incidents import acknowledge_incident, earliest, refresh_durations, resolve_incident

SOURCE = "pagerduty"
SIGNATURE_HEADER = "X-PagerDuty-Signature"


class EventType(StrEnum):
    TRIGGERED = "incident.triggered"
    ACKNOWLEDGED = "incident.acknowledged"
    RESOLVED = "incident.resolved"
    REASSIGNED = "incident.reassigned"
    PRIORITY_UPDATED = "incident.priority_updated"
    ANNOTATED = "incident.annotated"


class Outcome(StrEnum):
    """What processing made of a stored delivery."""

    PROCESSED = "processed"
    IGNORED = "ignored"  # an event type or resource the bot does not track; archived all the same
    WAITING = "waiting"  # a note about an incident not seen yet; processed when the incident arrives


class MalformedDelivery(ValueError):
    """The body is not a PagerDuty V3 event; `reason` goes back to PagerDuty in the 400 answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(body: bytes, secret: str) -> str:
    """The `v1=` signature PagerDuty sends for `body` under `secret` (HMAC-SHA256 of the raw bytes)."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when any `v1=` value of the header (several during a secret rotation) is the HMAC of the raw
    body under any configured secret. Compared in constant time, before the body is parsed."""
    if not header or not secrets:
        return False
    offered = [part.strip() for part in header.split(",") if part.strip().startswith("v1=")]
    expected = [sign(body, secret) for secret in secrets]
    matched = False
    for signature in offered:
        for candidate in expected:
            # No early exit: the time taken does not say which value matched.
            matched |= hmac.compare_digest(signature.encode(), candidate.encode())
    return matched


@dataclass(frozen=True)
class PagerDutyEvent:
    id: str
    event_type: str
    resource_type: str | None
    occurred_at: datetime
    agent: str | None
    data: dict[str, Any]

    @property
    def incident_id(self) -> str | None:
        """PagerDuty's incident id. For `incident.annotated`, `data.id` is the note and the incident is
        `data.incident.id`; for the other incident events, `data` is the incident itself."""
        if self.data.get("type") == "incident":
            return _str(self.data.get("id"))
        return _str((self.data.get("incident") or {}).get("id"))

    @property
    def incident(self) -> dict[str, Any] | None:
        """The full incident carried by the event, or None (a note carries only a reference)."""
        return self.data if self.data.get("type") == "incident" else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_instant(value: object) -> datetime | None:
    """PagerDuty's ISO 8601 instants ("2025-04-07T03:47:13.546Z") as aware UTC datetimes."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


# The fields the bot reads from `event.data`, with the longest value its columns hold: a delivery whose
# fields have other types or sizes is not one PagerDuty sends, and gets 400 instead of failing later.
_DATA_STRINGS = {"id": 64, "type": 64, "title": 100_000, "summary": 100_000, "urgency": 32, "html_url": 1024}
_DATA_OBJECTS = {"incident": {"id": 64, "html_url": 1024}, "service": {"id": 64}, "priority": {"summary": 64}}


def _data_shape_problem(data: dict[str, Any]) -> str | None:
    def strings(where: dict[str, Any], limits: dict[str, int], prefix: str = "") -> str | None:
        for name, longest in limits.items():
            value = where.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > longest):
                return f"{prefix}{name} is not a string of at most {longest} characters"
        return None

    problem = strings(data, _DATA_STRINGS)
    for name, limits in _DATA_OBJECTS.items():
        value = data.get(name)
        if value is not None and not isinstance(value, dict):
            return f"{name} is not an object"
        problem = problem or (strings(value, limits, f"{name}.") if value else None)
    number = data.get("number")
    if number is not None and (not isinstance(number, int) or not 0 <= number < 2**31):
        return "number is not an incident number"
    assignees = data.get("assignees")
    if assignees is not None and not (
        isinstance(assignees, list) and all(isinstance(a, dict) for a in assignees)
    ):
        return "assignees is not a list of objects"
    return problem


def parse_event(body: bytes) -> PagerDutyEvent:
    """The V3 envelope `{"event": {id, event_type, resource_type, occurred_at, agent, client, data}}`."""
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedDelivery("body is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise MalformedDelivery(f"body is not JSON: {exc.msg} at line {exc.lineno}") from exc
    except (ValueError, RecursionError) as exc:  # an integer of over 4,300 digits; nesting too deep
        raise MalformedDelivery("body is not JSON the bot can read (too deep, or a number too long)") from exc
    if b"\\u0000" in body:
        raise MalformedDelivery("body contains a NUL character")  # no database stores it in text
    event = document.get("event") if isinstance(document, dict) else None
    if not isinstance(event, dict):
        raise MalformedDelivery('not a PagerDuty V3 webhook: no "event" object')
    for name, longest in (("id", 128), ("event_type", 128)):
        if not _str(event.get(name)):
            raise MalformedDelivery(f'not a PagerDuty V3 event: "event.{name}" is missing')
        if len(event[name]) > longest:
            raise MalformedDelivery(f'not a PagerDuty V3 event: "event.{name}" is over {longest} characters')
    occurred_at = parse_instant(event.get("occurred_at"))
    if occurred_at is None:
        raise MalformedDelivery('not a PagerDuty V3 event: "event.occurred_at" is not an ISO 8601 instant')
    data = event.get("data")
    if not isinstance(data, dict):
        raise MalformedDelivery('not a PagerDuty V3 event: "event.data" is not an object')
    problem = _data_shape_problem(data)
    if problem:
        raise MalformedDelivery(f'not a PagerDuty V3 event: "event.data.{problem}"')
    agent = event.get("agent") or {}
    return PagerDutyEvent(
        id=event["id"],
        event_type=event["event_type"],
        resource_type=_str(event.get("resource_type")),
        occurred_at=occurred_at,
        agent=_str(agent.get("summary")) if isinstance(agent, dict) else None,
        data=data,
    )


@dataclass(frozen=True)
class Applied:
    """An event applied to the records: the incident, whether this event created it, and whether it
    resolved it (the flow posts about either)."""

    incident: Incident
    created: bool
    resolved_now: bool


def waiting_reason(pagerduty_id: str) -> str:
    return f"waiting for incident {pagerduty_id}"


def apply_to_records(*, session: Session, event: PagerDutyEvent, at: datetime) -> Applied | Outcome:
    """Update the incident and its timeline from one event: Applied, or IGNORED (not an incident event
    the bot tracks) or WAITING (a note about an incident not seen yet)."""
    pagerduty_id = event.incident_id
    if event.resource_type != "incident" or event.event_type not in EventType.__members__.values():
        return Outcome.IGNORED
    if pagerduty_id is None:
        return Outcome.IGNORED
    incident = _locked_incident(session, pagerduty_id)
    created = False
    if incident is None:
        if event.incident is None:
            return Outcome.WAITING
        incident, created, resolved_now = _create_incident(session, event, at=at)
    if not created:
        resolved_now = _apply_to_incident(session, incident, event, at=at, first=False)
        session.add(incident)
        session.flush()
    _add_timeline_entry(session, incident, event, at=at)
    return Applied(incident=incident, created=created, resolved_now=resolved_now)


def _locked_incident(session: Session, pagerduty_id: str) -> Incident | None:
    statement = select(Incident).where(Incident.pagerduty_id == pagerduty_id).with_for_update()
    return session.exec(statement).first()


def _triggered_instant(event: PagerDutyEvent) -> datetime:
    """The incident's start: `data.created_at`, which every incident event carries with the same value,
    so the instant does not depend on which event arrives first. Without it, the `incident.triggered`
    event's own `occurred_at` (any other event's `occurred_at` is only an upper bound, corrected by the
    earliest-wins rule when a better value arrives)."""
    data = event.incident or {}
    return parse_instant(data.get("created_at")) or event.occurred_at


def _apply_to_incident(
    session: Session | None, incident: Incident, event: PagerDutyEvent, *, at: datetime, first: bool
) -> bool:
    """Merge the event into the incident; True when this resolved it. `first`: the incident is new (not
    stored yet), so this event is the newest seen and no timeline needs reading."""
    if event.incident is not None:
        newest = None if first or session is None else _newest_event_instant(session, incident)
        _merge_incident_data(incident, event, describe=first or newest is None or event.occurred_at >= newest)
    resolved_now = False
    match event.event_type:
        case EventType.ACKNOWLEDGED:
            acknowledge_incident(incident=incident, at=event.occurred_at)
        case EventType.RESOLVED:
            resolved_now = resolve_incident(incident=incident, at=event.occurred_at)
    incident.updated_at = max(incident.updated_at, at)
    return resolved_now


def _create_incident(session: Session, event: PagerDutyEvent, *, at: datetime) -> tuple[Incident, bool, bool]:
    """Insert the incident with the event already applied (one INSERT); on a concurrent insert of the same
    PagerDuty id, apply the event to the winner's row. Returns (incident, created, resolved_now)."""
    data = event.incident or {}
    incident = Incident(
        pagerduty_id=event.incident_id,
        number=data.get("number") if isinstance(data.get("number"), int) else None,
        title=(_str(data.get("title")) or _str(data.get("summary")) or "Untitled incident")[:1024],
        triggered_at=_triggered_instant(event),
        created_at=at,
        updated_at=at,
    )
    resolved_now = _apply_to_incident(None, incident, event, at=at, first=True)
    try:
        with session.begin_nested():
            session.add(incident)
    except IntegrityError:
        existing = _locked_incident(session, event.incident_id or "")
        assert existing is not None
        return existing, False, False
    return incident, True, resolved_now


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


def _newest_event_instant(session: Session, incident: Incident) -> datetime | None:
    statement = select(func.max(TimelineEntry.occurred_at)).where(
        TimelineEntry.incident_id == incident.id, col(TimelineEntry.source_key).startswith("pagerduty:")
    )
    return session.exec(statement).first()


def _timeline_text(event: PagerDutyEvent) -> str:
    data = event.data
    by = f" by {event.agent}" if event.agent else ""
    match event.event_type:
        case EventType.TRIGGERED:
            service = (data.get("service") or {}).get("summary")
            return f"Triggered in PagerDuty: {data.get('title') or ''}" + (f" ({service})" if service else "")
        case EventType.ACKNOWLEDGED:
            return f"Acknowledged in PagerDuty{by}"
        case EventType.RESOLVED:
            return f"Resolved in PagerDuty{by}"
        case EventType.REASSIGNED:
            names = [a.get("summary") for a in data.get("assignees") or [] if a.get("summary")]
            return f"Reassigned to {', '.join(names) or 'nobody'}{by}"
        case EventType.PRIORITY_UPDATED:
            priority = (data.get("priority") or {}).get("summary") or "none"
            return f"Priority set to {priority}{by}"
        case _:
            return f"Note{by}: {data.get('content') or ''}".strip()


def _add_timeline_entry(session: Session, incident: Incident, event: PagerDutyEvent, *, at: datetime) -> None:
    link = _str(event.data.get("html_url")) or _str((event.data.get("incident") or {}).get("html_url"))
    insert_ignoring_duplicates(
        session,
        TimelineEntry,
        {
            "incident_id": incident.id,
            "source_key": f"pagerduty:{event.id}",
            "kind": event.event_type.removeprefix("incident."),
            "occurred_at": event.occurred_at,
            "author": (event.agent or "")[:255] or None,
            "text": _timeline_text(event),
            "permalink": link,
            "created_at": at,
        },
    )
