"""PagerDuty Webhooks V3: signatures, the event types, parsing. What each event does to an incident is
bot/domain/pagerduty_lifecycle.py's; what the bot posts about it, bot/flows/incident_events.py's.

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
from urllib.parse import urlsplit

SOURCE = "pagerduty"
SIGNATURE_HEADER = "X-PagerDuty-Signature"


class EventType(StrEnum):
    """Every incident event type of PagerDuty's V3 webhooks (its "Event Types" list; docs/pagerduty.md says
    what the bot does with each). Early-access types (incident.conference_bridge.updated,
    incident.custom_field_values.updated, incident.action_invocation.*) are archived and ignored."""

    TRIGGERED = "incident.triggered"
    ACKNOWLEDGED = "incident.acknowledged"
    UNACKNOWLEDGED = "incident.unacknowledged"
    RESOLVED = "incident.resolved"
    REOPENED = "incident.reopened"
    REASSIGNED = "incident.reassigned"
    ESCALATED = "incident.escalated"
    DELEGATED = "incident.delegated"
    PRIORITY_UPDATED = "incident.priority_updated"
    ANNOTATED = "incident.annotated"
    RESPONDER_ADDED = "incident.responder.added"
    RESPONDER_REPLIED = "incident.responder.replied"
    STATUS_UPDATE_PUBLISHED = "incident.status_update_published"


class Outcome(StrEnum):
    """What processing made of a stored delivery."""

    PROCESSED = "processed"
    IGNORED = "ignored"  # an event type or resource the bot does not track; archived all the same
    WAITING = "waiting"  # a note about an incident not seen yet; processed when the incident arrives
    ABANDONED = "abandoned"  # waited longer than its incident could still arrive; archived, marked processed


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
        """PagerDuty's incident id. For a note, a responder or a status update, `data.id` is that object's
        and the incident is `data.incident.id`; for the other incident events, `data` is the incident."""
        if self.data.get("type") == "incident":
            return _str(self.data.get("id"))
        return _str((self.data.get("incident") or {}).get("id"))

    @property
    def account(self) -> str:
        """The PagerDuty account: the host of the incident's web link ("acme.pagerduty.com"). Ids and
        numbers are only unique within an account; "" when the event carries no link."""
        reference = self.data if self.data.get("type") == "incident" else self.data.get("incident") or {}
        return (urlsplit(_str(reference.get("html_url")) or "").hostname or "")[:255]

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
_DATA_STRINGS = {
    "id": 64,
    "type": 64,
    "title": 100_000,
    "summary": 100_000,
    "urgency": 32,
    "html_url": 1024,
    "status": 32,
    "message": 100_000,
    "content": 100_000,
    "state": 32,
}
_DATA_OBJECTS = {
    "incident": {"id": 64, "html_url": 1024},
    "service": {"id": 64},
    "priority": {"summary": 64},
    "user": {"id": 64, "summary": 255},
    "escalation_policy": {"summary": 255},
    "resolve_reason": {"type": 64},
}


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
