"""What the bot posts about PagerDuty's incidents besides the card and the prompt (bot/slack/notices.py):
the announcement in ANNOUNCE_CHANNEL, the listing in TRIAGE_CHANNEL, the invitations of PagerDuty's
people into the channel, and the review request when a reopened incident's post-mortem was published."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlmodel import Session, select

from bot.core.config import Settings
from bot.core.models import Incident, OutboxMessage, Postmortem
from bot.core.rendering import escape_mrkdwn, format_duration, truncate_mrkdwn
from bot.domain.incidents import display_id, public_title
from bot.domain.postmortems import postmortem_for
from bot.slack import blocks
from bot.slack.channels import channel_mention
from bot.slack.outbox import enqueue, enqueue_invite

# Slack's limit for a section field is 2,000 characters: a few dozen assignees fit, more are cut.
ASSIGNED_LIMIT = 1_900


def pagerduty_fields(session: Session, incident: Incident, settings: Settings) -> list[tuple[str, str]]:
    """The incident card's fields from PagerDuty's side: who it is assigned to now (a Slack mention for
    someone mapped by PAGERDUTY_USER_MAP or found by e-mail, else PagerDuty's name), and a published
    post-mortem that needs a review since the incident reopened."""
    fields = []
    if incident.pagerduty_assignees:
        people = {person["id"]: person for person in incident.pagerduty_people}
        names = []
        for person_id in incident.pagerduty_assignees:
            person = people.get(person_id, {"name": person_id})
            slack_user = settings.pagerduty_user_map.get(person_id) or person.get("slack_user")
            names.append(f"<@{slack_user}>" if slack_user else escape_mrkdwn(person["name"]))
        fields.append(("Assigned", truncate_mrkdwn(", ".join(names), ASSIGNED_LIMIT)))
    postmortem = postmortem_for(session=session, incident=incident)
    if postmortem is not None and postmortem.needs_review_since is not None:
        fields.append(("Post-mortem", ":warning: needs a review (published before the incident reopened)"))
    return fields


def review_note(postmortem: Postmortem) -> str:
    """Said after a published summary's footer while its incident's reopen calls for a review."""
    if postmortem.needs_review_since is None:
        return ""
    return " · :warning: needs a review: the incident was reopened after this was published"


def enqueue_announcement(*, session: Session, incident: Incident, settings: Settings, at: datetime) -> None:
    """ANNOUNCE_CHANNEL hears of each PagerDuty incident's channel: one short message with a link, updated
    in place as the incident resolves (or reopens). Keyed by what it says, so a repeat changes nothing."""
    if not settings.announce_channel or not incident.channel_id or incident.pagerduty_id is None:
        return
    ref, title = display_id(incident), escape_mrkdwn(public_title(incident))
    where = channel_mention(incident.channel_id)
    if incident.merged_into:
        survivor = escape_mrkdwn(incident.merged_into)
        text = f":twisted_rightwards_arrows: Incident {ref} was merged into PagerDuty incident {survivor}."
    elif incident.resolved_at is not None:
        resolved = format_duration(incident.seconds_to_resolve)
        text = f":white_check_mark: Incident {ref} resolved after {resolved}: {title} ({where})"
    elif incident.reopened_at is not None:  # not the first message's words, or its key would say "sent"
        text = f":rotating_light: Incident {ref} reopened: {title} (in {where})"
    else:
        text = f":rotating_light: Incident {ref}: {title} (in {where})"
    enqueue(
        session,
        key=f"announce:{incident.id}:{hashlib.sha256(text.encode()).hexdigest()[:16]}",
        channel=settings.announce_channel,
        at=at,
        message_key=f"announce:{incident.id}",
        text=text,
    )


def triage_key(incident: Incident) -> str:
    return f"triage:{incident.id}"


def enqueue_triage(
    *,
    session: Session,
    incident: Incident,
    settings: Settings,
    at: datetime,
    opened_by: str | None = None,
    only_if_listed: bool = False,
) -> None:
    """TRIAGE_CHANNEL lists an incident that got no channel (CHANNEL_URGENCIES / CHANNEL_PRIORITIES) with
    an "Open a channel" button. The same message follows what happens to it: who pressed the button, and
    once the channel exists (pressed, or a later priority or urgency made it qualify), a link to it and
    no button. `only_if_listed`: update a listing, never start one."""
    if not settings.triage_channel:
        return
    if (
        only_if_listed
        and not session.exec(
            select(OutboxMessage.id).where(OutboxMessage.message_key == triage_key(incident)).limit(1)
        ).first()
    ):
        return
    ref, title = display_id(incident), escape_mrkdwn(incident.title)
    details = ", ".join(
        escape_mrkdwn(v) for v in (incident.service_name, incident.urgency, incident.priority) if v
    )
    by = f" by <@{opened_by}>" if opened_by else ""
    if incident.channel_id:
        state = f"open:{incident.channel_id}:{opened_by or ''}"
        where = channel_mention(incident.channel_id)
        text = f":mag: Incident {ref}: {title} ({details}): channel opened{by}: {where}"
    elif opened_by:
        state = f"opening:{opened_by}"
        text = f":mag: Incident {ref}: {title} ({details}): channel opened{by}."
    else:
        state = "listed"
        text = f":mag: Incident {ref}: {title} ({details}): no channel opened."
    listing = [blocks.section(text)]
    if state == "listed":
        button = blocks.button("Open a channel", blocks.Action.OPEN_CHANNEL, str(incident.id), "primary")
        listing.append({"type": "actions", "elements": [button]})
    enqueue(
        session,
        key=f"{triage_key(incident)}:{state}",
        channel=settings.triage_channel,
        at=at,
        message_key=triage_key(incident),
        text=text,
        blocks=listing,
    )


def enqueue_review_request(*, session: Session, incident: Incident, at: datetime, reason: str) -> None:
    """The incident was reopened after its post-mortem was published: its channel hears that the
    post-mortem needs a review (once per reopen: keyed by the event that reopened it)."""
    if not incident.channel_id:
        return
    enqueue(
        session,
        key=f"review:{incident.id}:{reason}",
        channel=incident.channel_id,
        at=at,
        text=(
            f":warning: Incident {display_id(incident)} was reopened after its post-mortem was published: "
            "the post-mortem needs a review once the incident is resolved again."
        ),
    )


ENABLE_INVITATIONS_HINT = (
    ":information_source: The bot can invite this incident's PagerDuty assignees and responders here: "
    "set PAGERDUTY_API_TOKEN (a read-only PagerDuty REST API key), or map people by hand with "
    "PAGERDUTY_USER_MAP (PXXXXXX=U0123ABCD,...)."
)


def enqueue_invitations(
    *, session: Session, incident: Incident, people: list[dict[str, str]], settings: Settings, at: datetime
) -> None:
    """Invite PagerDuty's people into the incident channel, each once (keyed by incident and person).
    Without PAGERDUTY_API_TOKEN only mapped people can be found: the channel hears once how to enable it."""
    if not incident.channel_id or incident.channel_is_private:
        # No channel yet: bot.flows.incidents.channel_opened invites everyone once it exists. A private
        # (SERVICE_CHANNELS) channel's members are its owners' choice, and the bot may not invite there.
        return
    for person in people:
        slack_user = settings.pagerduty_user_map.get(person["id"])
        if slack_user is None and not settings.pagerduty_api_token:
            enqueue(
                session,
                key=f"invite-hint:{incident.id}",
                channel=incident.channel_id,
                at=at,
                text=ENABLE_INVITATIONS_HINT,
            )
            continue
        enqueue_invite(
            session,
            key=f"invite:{incident.id}:{person['id']}",
            channel=incident.channel_id,
            at=at,
            payload={
                "incident_id": incident.id,
                "pagerduty_user": person["id"],
                "name": person["name"],
                "slack_user": slack_user,
            },
        )


def enqueue_unmatched_person(
    session: Session, *, incident_id: int, channel: str, name: str, at: datetime
) -> None:
    """Someone PagerDuty put on the incident has no Slack user the bot can find: said once per person."""
    enqueue(
        session,
        key=f"unmatched:{incident_id}:{name}",
        channel=channel,
        at=at,
        text=(
            f":bust_in_silhouette: {escape_mrkdwn(name)} is on this incident in PagerDuty, but no Slack user "
            "has their e-mail: invite them by hand (or add them to PAGERDUTY_USER_MAP)."
        ),
    )
