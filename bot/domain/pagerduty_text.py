"""The timeline's words for each PagerDuty V3 incident event (docs/pagerduty.md lists them)."""

from __future__ import annotations

from typing import Any

from bot.domain.pagerduty import EventType, PagerDutyEvent


def _summary(value: Any) -> str | None:
    summary = value.get("summary") if isinstance(value, dict) else None
    return summary if isinstance(summary, str) and summary else None


def _assignees(data: dict[str, Any]) -> str:
    names = [name for a in data.get("assignees") or [] if (name := _summary(a))]
    return ", ".join(names) or "nobody"


def timeline_text(event: PagerDutyEvent, *, merged_into: str | None) -> str:
    data = event.data
    by = f" by {event.agent}" if event.agent else ""
    match event.event_type:
        case EventType.TRIGGERED:
            service = _summary(data.get("service"))
            return f"Triggered in PagerDuty: {data.get('title') or ''}" + (f" ({service})" if service else "")
        case EventType.ACKNOWLEDGED:
            return f"Acknowledged in PagerDuty{by}"
        case EventType.UNACKNOWLEDGED:
            return "Unacknowledged in PagerDuty: paging again"
        case EventType.RESOLVED if merged_into:
            return f"Merged into PagerDuty incident {merged_into}{by}"
        case EventType.RESOLVED:
            return f"Resolved in PagerDuty{by}"
        case EventType.REOPENED:
            return f"Reopened in PagerDuty{by}"
        case EventType.REASSIGNED:
            return f"Reassigned to {_assignees(data)}{by}"
        case EventType.ESCALATED:
            return f"Escalated to {_assignees(data)}{by}"
        case EventType.DELEGATED:
            policy = _summary(data.get("escalation_policy")) or "another escalation policy"
            return f"Delegated to {policy} ({_assignees(data)}){by}"
        case EventType.PRIORITY_UPDATED:
            return f"Priority set to {_summary(data.get('priority')) or 'none'}{by}"
        case EventType.RESPONDER_ADDED:
            who = _summary(data.get("user")) or _summary(data.get("escalation_policy")) or "a responder"
            message = f": {data['message']}" if data.get("message") else ""
            return f"Responder requested: {who}{by}{message}"
        case EventType.RESPONDER_REPLIED:
            who = _summary(data.get("user")) or "A responder"
            return f"{who} replied to the responder request: {data.get('state') or 'no answer'}"
        case EventType.STATUS_UPDATE_PUBLISHED:
            return f"Status update{by}: {data.get('message') or ''}".strip()
        case _:
            return f"Note{by}: {data.get('content') or ''}".strip()
