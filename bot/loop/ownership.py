"""The digest's ownership section (docs/service-owners.md): the incidents of the period whose service has
no owner, by service, and the post-mortems whose owning team missed the documentation-latency target
(DOC_LATENCY_TARGET_HOURS after the resolution), by owner.

A post-mortem is judged once, in the period its deadline (resolution + target) falls in: it missed the
target when it was not published by then, or was published later (`seconds_to_document` over the
target). Merged and record-only incidents are left out, as in the KPIs."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, or_, select

from bot.core.config import Settings
from bot.core.models import Incident
from bot.core.rendering import escape_mrkdwn
from bot.domain.incidents import counted_incidents, display_id
from bot.domain.owners import Owner, configured_owner, looked_up_owners
from bot.loop.kpi_services import current_names, shown_names
from bot.slack.messages import owner_text

LIST_LIMIT = 10


def _owner(
    owners: dict[str, Owner], settings: Settings, service_id: str | None, name: str | None
) -> Owner | None:
    configured = configured_owner(settings.service_owners, service_id=service_id, service_name=name)
    return configured or owners.get(service_id or "")


def _service_link(service_id: str | None, name: str | None, account: str | None) -> str:
    shown = escape_mrkdwn(name or service_id or "")
    if service_id and account:
        return f"<https://{account}/services/{service_id}|{shown.replace('|', '¦')}>"
    return shown


def ownership_report(
    *, session: Session, settings: Settings, since: datetime, until: datetime
) -> dict[str, Any]:
    """The section's figures for [since, until), ready for the digest's template (mrkdwn, escaped)."""
    # A service is its key (its PagerDuty id, else its name) shown by its current name, as in the KPIs: a
    # renamed service is one row, two services of one name two.
    by_service = session.exec(
        select(
            Incident.service_key,
            func.max(Incident.service_id),
            func.max(Incident.pagerduty_account),
            func.count(),
        )
        .where(
            col(Incident.triggered_at) >= since,
            col(Incident.triggered_at) < until,
            col(Incident.service_key).is_not(None),
            *counted_incidents(),
        )
        .group_by(col(Incident.service_key))
    ).all()
    names = current_names(session)
    shown = shown_names(names)
    target = timedelta(hours=settings.doc_latency_target_hours)
    late = session.exec(
        select(Incident)
        .where(
            col(Incident.resolved_at) >= since - target,
            col(Incident.resolved_at) < until - target,
            or_(
                col(Incident.postmortem_published_at).is_(None),
                col(Incident.seconds_to_document) > target.total_seconds(),
            ),
            *counted_incidents(),
        )
        .order_by(col(Incident.resolved_at), col(Incident.id))
    ).all()
    owners = looked_up_owners(
        session, [i for _, i, *_ in by_service if i] + [i.service_id for i in late if i.service_id]
    )
    unowned: list[dict[str, Any]] = [
        {"service": _service_link(service_id, shown[key], account), "incidents": incidents}
        for key, service_id, account, incidents in by_service
        if _owner(owners, settings, service_id, names.get(key or "")) is None
    ]
    missed: defaultdict[Owner, list[str]] = defaultdict(list)
    for incident in late:
        name = names.get(incident.service_key or "", incident.service_name)
        owner = _owner(owners, settings, incident.service_id, name)
        if owner is not None:
            missed[owner].append(
                display_id(incident) + ("" if incident.postmortem_published_at else " (not published)")
            )
    services = sorted(unowned, key=lambda row: (-row["incidents"], row["service"]))
    teams = sorted(missed.items(), key=lambda item: (-len(item[1]), item[0].name))
    return {
        "unowned_incidents": sum(row["incidents"] for row in services),
        "unowned": services[:LIST_LIMIT],
        "unowned_more": max(0, len(services) - LIST_LIMIT),
        "late_total": sum(len(refs) for _, refs in teams),
        "late": [{"owner": owner_text(owner), "refs": refs} for owner, refs in teams[:LIST_LIMIT]],
        "target_hours": settings.doc_latency_target_hours,
    }
