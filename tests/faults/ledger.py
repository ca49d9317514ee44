"""Counting for the fault scenarios: what the test sent, what the bot acknowledged and stored, and which
messages Slack (the sandbox) ended up with, so each scenario prints one line of figures."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session, select

from bot.core.db import make_engine
from bot.core.models import OutboxMessage, OutboxStatus
from bot.devtools.sandbox import SlackSandbox
from bot.domain.deliveries import backlog
from bot.domain.pagerduty import SOURCE, sign
from bot.runtime.outbox_worker import OUTBOX_EVENT_TYPE
from bot.slack.outbox import OutboxKind
from tests.conftest import NOW

# A day before the tests' fixed NOW: incident numbers (up to ~1,000) are minutes after it, and an incident
# may not start in the future of the clock that processes it (bot/domain/pagerduty_lifecycle.py keeps
# such an incident for the record only): neither NOW in-process nor the real clock of a served bot.
BASE = NOW - timedelta(days=1)


@dataclass
class Figures:
    """sent: requests the test sent to the bot; acknowledged: those answered 2xx with success; stored:
    acknowledged changes found in the database; delivered: logical messages found in Slack."""

    sent: int = 0
    acknowledged: int = 0
    stored: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"sent={self.sent} acknowledged={self.acknowledged} stored={self.stored} "
            f"delivered={self.delivered} lost={self.lost} duplicated={self.duplicated}"
        )

    def report(self, name: str) -> None:
        print(f"\n[{name}] {self.line()}")
        assert self.lost == 0 and self.duplicated == 0, (self.line(), self.problems[:20])


def pagerduty_body(incident: str, number: int, kind: str, *, minutes: int) -> bytes:
    """A V3 delivery for a synthetic incident (same shape as the published fixtures)."""
    created = BASE + timedelta(minutes=number)
    data = {
        "id": incident,
        "type": "incident",
        "number": number,
        "status": kind,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "title": f"Load test incident {number}",
        "service": {"id": "PSVC001", "summary": "checkout", "type": "service_reference"},
        "urgency": "high",
        "html_url": f"https://example.pagerduty.com/incidents/{incident}",
    }
    event = {
        "id": f"EV{incident}{kind}",
        "event_type": f"incident.{kind}",
        "resource_type": "incident",
        "occurred_at": (created + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "agent": {"summary": "Ben", "type": "user_reference"},
        "client": None,
        "data": data,
    }
    return json.dumps({"event": event}).encode()


def post_pagerduty(url: str, body: bytes, secret: str, timeout: float = 10.0) -> int:
    """POST a signed delivery; the HTTP status, or 0 when the bot did not answer (down, or killed)."""
    request = urllib.request.Request(
        url + "/webhooks/pagerduty",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign(body, secret)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return 0


def outbox_rows(database_url: str) -> list[OutboxMessage]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return list(session.exec(select(OutboxMessage)))
    finally:
        engine.dispose()


def outbox_settled(database_url: str) -> bool:
    """Every stored delivery is processed (what it owes Slack is in the outbox) and no outbox row is
    pending any more."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            if backlog(session, source=SOURCE)["unprocessed"]:
                return False
    finally:
        engine.dispose()
    rows = outbox_rows(database_url)
    return bool(rows) and all(row.status != OutboxStatus.PENDING for row in rows)


def count_messages(sandbox: SlackSandbox, database_url: str, figures: Figures) -> None:
    """Every logical message the outbox owed must be in its channel exactly once: a post (and its
    in-place updates) found by the metadata keys of its rows, an upload by its file name. A parked row
    is a lost message. Ephemeral messages and channel creations are not counted here."""
    rows = outbox_rows(database_url)
    groups: dict[tuple[str, str], set[str]] = {}
    uploads: list[OutboxMessage] = []
    for row in rows:
        if row.status != OutboxStatus.SENT:
            figures.lost += 1
            figures.problems.append(f"row {row.key} {row.status}: {row.last_error}")
            continue
        if row.kind == OutboxKind.POST:
            groups.setdefault((row.channel, row.message_key or row.key), set()).add(row.key)
        elif row.kind == OutboxKind.UPLOAD:
            uploads.append(row)
    by_channel: dict[str, list[dict]] = {}

    def messages(channel: str) -> list[dict]:
        channel_id = sandbox.channel_id(channel) if not channel[:1].isupper() else channel
        if channel_id not in by_channel:
            by_channel[channel_id] = sandbox.messages(channel_id, "all")
        return by_channel[channel_id]

    for (channel, logical), keys in groups.items():
        found: Counter[str] = Counter()
        for message in messages(channel):
            metadata = message.get("metadata") or {}
            if metadata.get("event_type") == OUTBOX_EVENT_TYPE and metadata["event_payload"]["key"] in keys:
                found[logical] += 1
        _tally(figures, logical, found[logical])
    for row in uploads:
        copies = sum(
            1
            for message in messages(row.channel)
            for f in message.get("files") or []
            if f.get("name") == row.payload["filename"]
        )
        _tally(figures, row.key, copies)


def _tally(figures: Figures, what: str, copies: int) -> None:
    if copies == 0:
        figures.lost += 1
        figures.problems.append(f"{what}: not in Slack")
    else:
        figures.delivered += 1
        if copies > 1:
            figures.duplicated += copies - 1
            figures.problems.append(f"{what}: {copies} copies")
