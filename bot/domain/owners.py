"""Who owns a service (docs/service-owners.md): SERVICE_OWNERS when it names the service (by PagerDuty id,
else by name), else what PagerDuty said when the bot last looked the service up (its first team, else its
escalation policy). The explicit setting wins: it is how a team corrects or completes PagerDuty.

A lookup is owed when an incident of a service arrives that the bot has never looked up, or last looked
up more than LOOKUP_REFRESH ago; the owner lookup (bot/runtime/owner_lookups.py) answers it off the
webhook's path and retries it while PagerDuty fails."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.core.db import insert_ignoring_duplicates
from bot.core.models import Incident
from bot.core.service_owners import ServiceOwnerLookup

# How long PagerDuty's answer stands before the next incident of the service asks again.
LOOKUP_REFRESH = timedelta(hours=24)


class OwnerKind(StrEnum):
    SLACK_USER = "slack_user"  # SERVICE_OWNERS: U0123ABCD
    SLACK_GROUP = "slack_group"  # SERVICE_OWNERS: @team-handle
    TEAM = "team"  # PagerDuty: the service's first team
    ESCALATION_POLICY = "escalation_policy"  # PagerDuty: the service's escalation policy


@dataclass(frozen=True)
class Owner:
    kind: OwnerKind
    name: str  # the user id, the handle (with its @), or PagerDuty's name
    url: str | None = None  # PagerDuty's page of the team or policy


def configured_owner(
    owners: Mapping[str, str], *, service_id: str | None, service_name: str | None
) -> Owner | None:
    """The owner SERVICE_OWNERS names for the service, by its id first, then by its name."""
    value = owners.get(service_id or "") or owners.get(service_name or "")
    if not value:
        return None
    return Owner(OwnerKind.SLACK_GROUP if value.startswith("@") else OwnerKind.SLACK_USER, value)


def looked_up_owner(row: ServiceOwnerLookup | None) -> Owner | None:
    if row is None or not row.owner or not row.owner_kind:
        return None
    return Owner(OwnerKind(row.owner_kind), row.owner, row.owner_url)


def owner_of(
    session: Session, owners: Mapping[str, str], *, service_id: str | None, service_name: str | None
) -> Owner | None:
    """The service's owner (None: nobody is known to own it, or it has no service)."""
    configured = configured_owner(owners, service_id=service_id, service_name=service_name)
    if configured is not None or not service_id:
        return configured
    return looked_up_owner(session.get(ServiceOwnerLookup, service_id))


def incident_owner(session: Session, owners: Mapping[str, str], incident: Incident) -> Owner | None:
    """The owner of the incident's service."""
    return owner_of(session, owners, service_id=incident.service_id, service_name=incident.service_name)


def looked_up_owners(session: Session, service_ids: Iterable[str]) -> dict[str, Owner]:
    """PagerDuty's owners of these services, by service id (those with none are left out)."""
    ids = sorted(set(service_ids))
    rows = session.exec(select(ServiceOwnerLookup).where(col(ServiceOwnerLookup.service_id).in_(ids))).all()
    return {row.service_id: owner for row in rows if (owner := looked_up_owner(row)) is not None}


def owe_lookup(session: Session, *, service_id: str, at: datetime) -> None:
    """Owe a lookup of the service when it was never looked up, or its answer is older than
    LOOKUP_REFRESH (a lookup already owed stays as it is, with its back-off)."""
    if insert_ignoring_duplicates(
        session, ServiceOwnerLookup, {"service_id": service_id, "next_lookup_at": at, "attempts": 0}
    ):
        return
    session.execute(
        update(ServiceOwnerLookup)
        .where(
            col(ServiceOwnerLookup.service_id) == service_id,
            col(ServiceOwnerLookup.next_lookup_at).is_(None),
            col(ServiceOwnerLookup.looked_up_at) < at - LOOKUP_REFRESH,
        )
        .values(next_lookup_at=at)
    )


def claim_lookup(session: Session, *, now: datetime, lease: timedelta) -> str | None:
    """The id of a service whose lookup is due, leased for `lease` (a replica that dies mid-lookup leaves
    it due again after that); None when none is due."""
    row = session.exec(
        select(ServiceOwnerLookup)
        .where(col(ServiceOwnerLookup.next_lookup_at) <= now)
        .order_by(col(ServiceOwnerLookup.next_lookup_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    row.next_lookup_at = now + lease
    session.add(row)
    return row.service_id


def record_lookup(session: Session, *, service_id: str, found: Owner | None, at: datetime) -> bool:
    """Store PagerDuty's answer; True when the owner it names changed."""
    row = session.get(ServiceOwnerLookup, service_id) or ServiceOwnerLookup(service_id=service_id)
    changed = looked_up_owner(row) != found
    row.owner, row.owner_kind, row.owner_url = (
        (found.name[:255], found.kind, found.url) if found else (None, None, None)
    )
    row.looked_up_at, row.next_lookup_at, row.attempts, row.last_error = at, None, 0, None
    session.add(row)
    return changed


def record_lookup_failure(session: Session, *, service_id: str, error: str, retry_at: datetime) -> None:
    """Keep the error, count the failure (`attempts`: in a row) and try again at `retry_at`."""
    row = session.get(ServiceOwnerLookup, service_id) or ServiceOwnerLookup(service_id=service_id)
    row.attempts += 1
    row.last_error, row.next_lookup_at = error, retry_at
    session.add(row)
