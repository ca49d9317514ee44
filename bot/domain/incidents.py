"""Incidents and their lifecycle instants. No Slack here: callers pass ids and instants.

Rule from PagerDuty's delivery model (docs/architecture.md, "PagerDuty"): events arrive late, twice and out
of order, so each instant keeps the earliest value seen and an incident never moves backwards."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, or_, select

from bot.core.db import insert_ignoring_duplicates, serialize_on
from bot.core.errors import UserError
from bot.core.incident_table import counted
from bot.core.models import Incident, IncidentStatus, Postmortem, TimelineEntry


class IncidentError(UserError):
    """A user-facing problem with an incident request; the message is shown to the user."""


def _seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


def refresh_durations(incident: Incident) -> None:
    """Recompute the stored durations from the instants (called at every transition)."""
    incident.seconds_to_acknowledge = _seconds_between(incident.triggered_at, incident.acknowledged_at)
    incident.seconds_to_first_response = _seconds_between(incident.triggered_at, incident.first_response_at)
    incident.seconds_to_resolve = _seconds_between(incident.triggered_at, incident.resolved_at)
    incident.seconds_to_document = _seconds_between(incident.resolved_at, incident.postmortem_published_at)


def owes_postmortem(incident: Incident) -> bool:
    """Merged and record-only incidents (bot/domain/pagerduty_lifecycle.py) get no prompt, no nudge and no
    place in the KPIs."""
    return incident.merged_into is None and incident.recorded_only is None


def deserves_channel(incident: Incident, *, urgencies: list[str], priorities: list[str]) -> bool:
    """CHANNEL_URGENCIES and CHANNEL_PRIORITIES: whether a PagerDuty incident gets a channel of its own
    (an unknown urgency does not hold it back; with priorities set, it needs one of them)."""
    urgency_ok = incident.urgency is None or incident.urgency in urgencies
    return urgency_ok and (not priorities or incident.priority in priorities)


def counted_incidents() -> list[ColumnElement[bool]]:
    """The SQL form of `owes_postmortem`: the incidents KPIs, digests, nudges and metrics count."""
    return counted()


def earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def declare_incident(
    *,
    session: Session,
    title: str,
    channel_id: str,
    channel_name: str | None,
    channel_is_private: bool,
    declared_by: str,
    at: datetime,
) -> Incident:
    """`/postmortem new <title>`: an incident declared by hand in the current channel."""
    title = title.strip()
    if not title:
        raise IncidentError("Give the incident a title: `/postmortem new <title>`.")
    # One incident per channel, but no unique index can say so (SERVICE_CHANNELS sends many incidents to
    # one channel): two replicas declaring in one channel at once take turns here instead.
    serialize_on(session, f"declare-incident:{channel_id}")
    existing = incident_for_channel(session=session, channel_id=channel_id)
    if existing is not None:
        raise IncidentError(
            f"This channel already belongs to incident {display_id(existing)} ({existing.title}). "
            "Run `/postmortem` to write its post-mortem."
        )
    incident = Incident(
        title=title[:1024],
        channel_id=channel_id,
        channel_name=channel_name,
        channel_is_private=channel_is_private,
        declared_by=declared_by,
        triggered_at=at,
        created_at=at,
        updated_at=at,
    )
    session.add(incident)
    session.flush()
    return incident


MAX_CHANNEL_NAME = 80  # Slack's limit for a channel name


def slugify(text: str) -> str:
    """Lower-case a-z, 0-9 and dashes: accents folded ("Café" -> "cafe"), anything else a dash, runs
    collapsed, ends trimmed. Channel names and exported file names."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")


def incident_channel_name(*, prefix: str, number: int | None, title: str) -> str:
    """`<prefix><number>-<slug of title>`: lower-case a-z, 0-9 and dashes, within Slack's 80 characters.

    Accents are folded ("Café" -> "cafe"); anything else becomes a dash, runs collapse, ends are trimmed.
    """
    slug = slugify(title)
    head = f"{prefix}{number}" if number is not None else prefix.rstrip("-_")
    room = MAX_CHANNEL_NAME - len(head) - 1
    slug = slug[:room].rstrip("-") if room > 0 else ""
    return f"{head}-{slug}" if slug else head[:MAX_CHANNEL_NAME]


# How many names an incident channel may try: `name`, `name-2` ... `name-{CHANNEL_NAME_TRIES}`.
CHANNEL_NAME_TRIES = 50


def channel_name_variants(name: str) -> list[str]:
    """`name`, then `name-2`, `name-3` ...: the names an incident channel tries when one is taken, each
    within Slack's 80 characters (the name is shortened, never the suffix)."""
    variants = [name]
    for n in range(2, CHANNEL_NAME_TRIES + 1):
        suffix = f"-{n}"
        variants.append(name[: MAX_CHANNEL_NAME - len(suffix)].rstrip("-") + suffix)
    return variants


def shown_publicly(incident: Incident, postmortem: Postmortem | None = None) -> bool:
    """Details of an incident in a private channel leave it only when its post-mortem was shared publicly
    (the publisher ticks "share publicly"); everything else may be shown in public channels."""
    return not incident.channel_is_private or (postmortem is not None and postmortem.share_publicly)


def public_title(incident: Incident, postmortem: Postmortem | None = None) -> str:
    """The title to show in a public channel or to someone outside the incident: withheld when private."""
    return incident.title if shown_publicly(incident, postmortem) else "(a private incident)"


def public_item_text(text: str, incident: Incident, postmortem: Postmortem | None = None) -> str:
    """An action item's text for a public channel: withheld when its incident is private and not shared."""
    return text if shown_publicly(incident, postmortem) else "(an action item of a private incident)"


def display_id(incident: Incident) -> str:
    return f"#{incident.number}" if incident.number is not None else f"D-{incident.id}"


def get_incident(*, session: Session, incident_id: int) -> Incident:
    """The incident, or an error the user sees (a button or modal can outlive its incident's data)."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise IncidentError("That incident no longer exists.")
    return incident


def incident_for_channel(*, session: Session, channel_id: str) -> Incident | None:
    """The most recent incident whose channel this is."""
    statement = (
        select(Incident).where(Incident.channel_id == channel_id).order_by(col(Incident.triggered_at).desc())
    )
    return session.exec(statement.limit(1)).first()


def recent_incidents(*, session: Session, limit: int = 10) -> list[Incident]:
    statement = select(Incident).order_by(col(Incident.triggered_at).desc()).limit(limit)
    return list(session.exec(statement))


def answered_incident(
    *, session: Session, channel_id: str, at: datetime, card_of: int | None = None
) -> Incident | None:
    """The incident a person's message at `at` in `channel_id` answers, if any. A reply in the thread of
    an incident's card (`card_of`) answers that incident. Any other message answers the oldest incident of
    the channel that was open at `at` and had no earlier response: in a team channel shared by several
    incidents (SERVICE_CHANNELS), people take them in the order they came."""
    if card_of is not None:
        incident = session.get(Incident, card_of)
        return incident if incident is not None and incident.channel_id == channel_id else None
    statement = (
        select(Incident)
        .where(
            Incident.channel_id == channel_id,
            col(Incident.triggered_at) <= at,
            or_(col(Incident.resolved_at).is_(None), col(Incident.resolved_at) > at),
            or_(col(Incident.first_response_at).is_(None), col(Incident.first_response_at) > at),
        )
        .order_by(col(Incident.triggered_at), col(Incident.id))
    )
    return session.exec(statement.limit(1)).first()


def record_first_response(*, incident: Incident, user_id: str, at: datetime) -> bool:
    """A human spoke in the incident channel. Returns True when this set (or moved earlier) the instant."""
    if at < incident.triggered_at or (incident.resolved_at is not None and at >= incident.resolved_at):
        # Chatter from before the incident began, or after it was resolved, is not a response to it.
        return False
    first = earliest(incident.first_response_at, at)
    if first == incident.first_response_at:
        return False
    incident.first_response_at = first
    incident.first_responder = user_id
    _touch(incident, at)
    return True


def resolve_incident(*, incident: Incident, at: datetime) -> bool:
    """Record the resolution (earliest wins). Returns True when the incident changed."""
    resolved = earliest(incident.resolved_at, at)
    if resolved == incident.resolved_at:
        return False
    incident.resolved_at = resolved
    incident.status = IncidentStatus.RESOLVED
    _touch(incident, at)
    return True


def acknowledge_incident(*, incident: Incident, at: datetime) -> bool:
    """Record the first acknowledgement (earliest wins); never moves a resolved incident back."""
    acknowledged = earliest(incident.acknowledged_at, at)
    if acknowledged == incident.acknowledged_at:
        return False
    incident.acknowledged_at = acknowledged
    if incident.status == IncidentStatus.TRIGGERED:
        incident.status = IncidentStatus.ACKNOWLEDGED
    _touch(incident, at)
    return True


def _touch(incident: Incident, at: datetime) -> None:
    refresh_durations(incident)
    incident.updated_at = max(incident.updated_at, at)


def slack_source_key(channel_id: str, ts: str) -> str:
    """The timeline key of a Slack message: one entry per message, however often it is pinned."""
    return f"slack:{channel_id}:{ts}"


def capture_message(
    *,
    session: Session,
    incident: Incident,
    channel_id: str,
    ts: str,
    occurred_at: datetime,
    author: str | None,
    text: str,
    permalink: str | None,
    at: datetime,
) -> bool:
    """Add a Slack message to the incident's timeline (a :pushpin: or "Add to timeline"). Idempotent: a
    message pinned twice, or pinned and then shortcut, is one entry. Returns True when it was added."""
    return insert_ignoring_duplicates(
        session,
        TimelineEntry,
        {
            "incident_id": incident.id,
            "source_key": slack_source_key(channel_id, ts),
            "kind": "message",
            "occurred_at": occurred_at,
            "author": (author or "")[:255] or None,
            "text": text,
            "permalink": (permalink or "")[:1024] or None,
            "created_at": at,
        },
    )
