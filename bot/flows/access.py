"""The one authorization check every post-mortem gesture runs before it changes anything. The rule is
bot/domain/access.py's; the channel's members come from Slack (bot/slack/members.py), cached briefly."""

from __future__ import annotations

from collections.abc import Collection

from slack_sdk import WebClient

from bot.core.models import Incident
from bot.domain.access import may_edit, refusal
from bot.domain.incidents import get_incident
from bot.flows.context import Runtime
from bot.slack.members import channel_members


def participants_seen_by(
    runtime: Runtime, client: WebClient, *, channel_id: str | None, user_id: str
) -> Collection[str]:
    """The channel's members as `user_id` is judged by: from the cache when they are among them, else
    freshly loaded (a refusal is always based on the current member list). Admins need no lookup."""
    if not channel_id or user_id in runtime.settings.postmortem_admins:
        return frozenset()
    return runtime.participants.members_seen_by(channel_id, user_id, lambda c: channel_members(client, c))


def require_editor(
    runtime: Runtime, client: WebClient, *, user_id: str, incident_id: int, what: str = "edit its post-mortem"
) -> Incident:
    """The incident, once `user_id` may edit its post-mortem; else NotAllowed (a UserError the person
    sees), before anything is stored."""
    with runtime.read() as session:
        incident = get_incident(session=session, incident_id=incident_id)
    check_editor(runtime, client, user_id=user_id, incident=incident, what=what)
    return incident


def check_editor(
    runtime: Runtime,
    client: WebClient,
    *,
    user_id: str,
    incident: Incident,
    what: str = "edit its post-mortem",
) -> None:
    """NotAllowed unless `user_id` may edit the post-mortem of `incident` (already read by the caller)."""
    admins = runtime.settings.postmortem_admins
    participants = participants_seen_by(runtime, client, channel_id=incident.channel_id, user_id=user_id)
    if not may_edit(user_id=user_id, participants=participants, admins=admins):
        raise refusal(channel_id=incident.channel_id, what=what)
