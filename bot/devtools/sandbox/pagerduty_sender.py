"""A PagerDuty stand-in for the demo, the browser page and the benchmarks: it builds V3 webhook deliveries
shaped like the real ones in ../shared/fixtures/pagerduty and sends them signed, as PagerDuty does."""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bot.domain.pagerduty import sign


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class FakeIncident:
    """What PagerDuty knows of one incident; each event repeats it, as real deliveries do."""

    number: int
    title: str
    service_id: str
    service_name: str
    created_at: datetime
    urgency: str = "high"
    id: str = field(default_factory=lambda: "Q" + uuid.uuid4().hex[:13].upper())


def event_body(incident: FakeIncident, event_type: str, *, at: datetime, status: str) -> bytes:
    """One V3 delivery: `{"event": {id, event_type, resource_type, occurred_at, agent, client, data}}`."""
    base = "https://sandbox.pagerduty.example"
    data: dict[str, Any] = {
        "id": incident.id,
        "type": "incident",
        "self": f"{base}/api/incidents/{incident.id}",
        "html_url": f"{base}/incidents/{incident.id}",
        "number": incident.number,
        "status": status,
        "incident_key": uuid.uuid5(uuid.NAMESPACE_URL, incident.id).hex,
        "created_at": incident.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": incident.title,
        "service": {
            "id": incident.service_id,
            "summary": incident.service_name,
            "type": "service_reference",
            "html_url": f"{base}/services/{incident.service_id}",
        },
        "assignees": [],
        "priority": None,
        "urgency": incident.urgency,
    }
    event = {
        "id": uuid.uuid4().hex.upper()[:26],
        "event_type": event_type,
        "resource_type": "incident",
        "occurred_at": _iso(at),
        "agent": {"id": "PSANDBOX", "summary": "On-call (sandbox)", "type": "user_reference"},
        "client": None,
        "data": data,
    }
    return json.dumps({"event": event}).encode()


class PagerDutySender:
    """Sends signed deliveries to the bot's `/webhooks/pagerduty`; returns (HTTP status, body)."""

    STATUS = {
        "incident.triggered": "triggered",
        "incident.acknowledged": "acknowledged",
        "incident.resolved": "resolved",
    }

    def __init__(self, bot_url: str, secret: str) -> None:
        self.bot_url = bot_url
        self.secret = secret

    def send(self, incident: FakeIncident, event_type: str, *, at: datetime) -> tuple[int, str]:
        body = event_body(incident, event_type, at=at, status=self.STATUS.get(event_type, "triggered"))
        return self.deliver(body)

    def deliver(self, body: bytes) -> tuple[int, str]:
        url = urlsplit(self.bot_url)
        if url.hostname is None:
            raise ValueError(f"the bot's URL has no host: {self.bot_url!r}")
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/webhooks/pagerduty",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "X-PagerDuty-Signature": sign(body, self.secret),
                },
            )
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()
