"""A published post-mortem whose incident reopens needs a review: flagged until it is published again
(`save_postmortem` clears the flag), and its incident's documentation is no longer current, so the
documentation latency counts from the final resolution to that next publication (docs/pagerduty.md)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.core.models import Incident, Postmortem
from bot.domain.incidents import refresh_durations
from bot.domain.postmortems import postmortem_for


def flag_for_review(*, session: Session, incident: Incident, at: datetime) -> Postmortem | None:
    """Flag the reopened incident's published post-mortem (the first reopen since its publication is
    kept); returns it, or None when there is nothing published to review."""
    postmortem = postmortem_for(session=session, incident=incident)
    if postmortem is None or postmortem.published_at is None:
        return None
    postmortem.needs_review_since = postmortem.needs_review_since or incident.reopened_at or at
    incident.postmortem_published_at = None
    refresh_durations(incident)
    session.add_all([postmortem, incident])
    return postmortem


def postmortem_status(postmortem: Postmortem | None) -> str:
    """As `/postmortem list` and App Home say it."""
    if postmortem is None:
        return "not started"
    return "published, needs a review" if postmortem.needs_review_since else postmortem.status
