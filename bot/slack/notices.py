"""What the bot posts about incidents and post-mortems, enqueued through the outbox.

Rules that live here: which channel hears what, and which Slack message each notice updates in place.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.core.config import Settings
from bot.core.models import Incident, OutboxMessage, Postmortem, SlackMessage, TimelineEntry
from bot.core.rendering import (
    escape_mrkdwn,
    format_duration,
    format_instant,
    render,
    slack_message_mrkdwn,
    truncate_mrkdwn,
)
from bot.core.rows import id_of
from bot.domain.action_items import issue_refs
from bot.domain.channels import channel_state, reachable
from bot.domain.document import document_context, document_filename
from bot.domain.incidents import display_id, incident_channel_name, owes_postmortem, shown_publicly
from bot.domain.owners import incident_owner
from bot.domain.postmortems import SaveResult
from bot.slack import blocks, messages
from bot.slack.channels import channel_mention
from bot.slack.outbox import Priority, enqueue, enqueue_channel, enqueue_upload
from bot.slack.pagerduty_notices import pagerduty_fields, review_note

CARD = "card:"


def card_key(incident: Incident) -> str:
    return f"{CARD}{incident.id}"


def incident_of_card(session: Session, *, channel_id: str, ts: str) -> int | None:
    """The id of the incident whose card is the message at `ts` in `channel_id` (None: not a card)."""
    location = session.exec(
        select(SlackMessage).where(
            SlackMessage.channel == channel_id,
            SlackMessage.ts == ts,
            col(SlackMessage.key).startswith(CARD),
        )
    ).first()
    return int(location.key.removeprefix(CARD)) if location is not None else None


def summary_key(incident: Incident) -> str:
    return f"summary:{incident.id}"


def prompt_key(incident: Incident) -> str:
    return f"prompt:{incident.id}"


def incident_priority(incident: Incident) -> Priority:
    """A high-urgency incident's channel and card go before anything else waiting for Slack."""
    return Priority.URGENT if (incident.urgency or "").lower() == "high" else Priority.NORMAL


def _took(seconds: int | None, happened: datetime | None) -> str:
    return format_duration(seconds) if happened else "—"


def enqueue_incident_card(
    *, session: Session, incident: Incident, settings: Settings, at: datetime, reason: str | None = None
) -> None:
    """Post the incident card, or update it in place. One row per change: keyed by `reason` (the event that
    caused it, e.g. a PagerDuty event id) or else by the change's instant and status. A channel the bot
    can no longer post in keeps its card as it was."""
    if not incident.channel_id or not reachable(channel_state(session, incident.channel_id)):
        return
    tz = settings.tz
    fields = [
        ("Triggered", format_instant(incident.triggered_at, tz)),
        ("Acknowledged", _took(incident.seconds_to_acknowledge, incident.acknowledged_at)),
        ("First response", _took(incident.seconds_to_first_response, incident.first_response_at)),
        ("Resolved", _took(incident.seconds_to_resolve, incident.resolved_at)),
    ]
    owner = incident_owner(session, settings.service_owners, incident)
    if owner is not None:
        fields.insert(0, ("Owner", messages.owner_text(owner)))
    if incident.service_name:
        fields.insert(0, ("Service", escape_mrkdwn(incident.service_name)))
    if incident.urgency:
        fields.append(("Urgency", escape_mrkdwn(incident.urgency)))
    if incident.priority:
        fields.append(("Priority", escape_mrkdwn(incident.priority)))
    if incident.merged_into:
        fields.append(("Merged into", f"PagerDuty incident {escape_mrkdwn(incident.merged_into)}"))
    if incident.reopened_at and incident.status != "resolved":
        fields.append(("Reopened", format_instant(incident.reopened_at, tz)))
    fields += pagerduty_fields(session, incident, settings)
    text, card = messages.incident_card(
        title=incident.title,
        incident_ref=display_id(incident),
        status=incident.status,
        fields=fields,
        link=incident.html_url,
    )
    enqueue(
        session,
        key=f"{card_key(incident)}:{reason}"
        if reason
        else f"{card_key(incident)}:{incident.updated_at.isoformat()}:{incident.status}",
        channel=incident.channel_id,
        at=at,
        message_key=card_key(incident),
        text=text,
        blocks=card,
        priority=incident_priority(incident),
    )


def enqueue_resolve_prompt(*, session: Session, incident: Incident, at: datetime, first: bool) -> None:
    """In the incident channel, one message per incident ever, posted at its resolution (`first`: it just
    became resolved): resolved after N minutes, and a button that opens the post-mortem. It follows the
    incident afterwards: while a reopened incident lives it says so, with no button (nobody is invited to
    write up a live incident), and the next resolution makes it the prompt again with the final duration.
    Each state is keyed by its instant, so a repeated or late event changes nothing."""
    if not incident.channel_id:
        return
    prompted = session.exec(
        select(OutboxMessage.id).where(OutboxMessage.message_key == prompt_key(incident)).limit(1)
    ).first()
    if prompted is None and not first:
        return
    if incident.resolved_at is not None and owes_postmortem(incident):
        minutes = round((incident.seconds_to_resolve or 0) / 60)
        state = incident.resolved_at.isoformat()
        text, prompt = messages.resolve_prompt(
            incident_id=id_of(incident), incident_ref=display_id(incident), minutes=minutes
        )
    elif incident.resolved_at is None and incident.reopened_at is not None and prompted is not None:
        state = f"reopened:{incident.reopened_at.isoformat()}"
        text, prompt = messages.reopened_prompt(incident_ref=display_id(incident))
    else:
        return
    enqueue(
        session,
        key=f"{prompt_key(incident)}:{state}",
        channel=incident.channel_id,
        at=at,
        message_key=prompt_key(incident),
        text=text,
        blocks=prompt,
    )


def incident_channel_target(incident: Incident, settings: Settings) -> tuple[str, bool]:
    """(channel name or id, create?): the service's configured channel, else a new one per incident."""
    mapped = settings.service_channels.get(incident.service_id or "")
    if mapped:
        return mapped, False
    name = incident_channel_name(
        prefix=settings.incident_channel_prefix, number=incident.number, title=incident.title
    )
    return name, True


def enqueue_incident_channel(
    *, session: Session, incident: Incident, settings: Settings, at: datetime, opened_by: str | None = None
) -> None:
    """Owe the incident its channel. Opening it calls Slack, so it goes through the outbox: the webhook
    answers at once, and while Slack is down the row waits and retries (the incident is already stored).
    `bot.flows.incidents.channel_opened` runs when the channel exists.

    Every later event of an incident without a channel asks again (bot/flows/incident_events.py), so an
    owed channel is looked for first: a plain read, where the insert's conflict check would wait for the
    row while the outbox marks it sent, and that transaction waits for this incident's lock (a deadlock
    PostgreSQL reported)."""
    key = f"channel:{incident.id}"
    if session.exec(select(OutboxMessage.id).where(OutboxMessage.key == key)).first() is not None:
        return
    target, create = incident_channel_target(incident, settings)
    enqueue_channel(
        session,
        key=key,
        name=target,
        create=create,
        at=at,
        context={"incident_id": incident.id, "opened_by": opened_by},
        priority=incident_priority(incident),
    )


def summary_message(
    *, session: Session, incident: Incident, postmortem: Postmortem, settings: Settings
) -> tuple[str, list[dict[str, Any]]]:
    context = document_context(session=session, incident=incident, postmortem=postmortem, tz=settings.tz)
    items = [(i.text, i.owner_id, i.due_date, i.status == "done") for i in context["action_items"]]
    refs = issue_refs(session, (i.id for i in context["action_items"]))
    published = format_instant(postmortem.published_at, settings.tz)
    return messages.summary_message(
        title=incident.title,
        incident_ref=context["incident_ref"],
        body=render("postmortem_summary.mrkdwn.j2", **context).strip(),
        fallback=render("postmortem_summary.text.j2", **context).strip(),
        severity=postmortem.severity,
        services=postmortem.services,
        resolution_time=context["resolution_time"],
        channel_id=incident.channel_id,
        action_items=items,
        action_item_ids=[id_of(i) for i in context["action_items"]],
        issues=[refs.get(id_of(i)) for i in context["action_items"]],
        timeline=[timeline_line(entry, settings) for entry in context["timeline"]],
        owner=incident_owner(session, settings.service_owners, incident),
        footer=f"Published {published} by <@{postmortem.published_by}> · revision {postmortem.revision}"
        + docs_link(incident, settings)
        + review_note(postmortem),
    )


def docs_link(incident: Incident, settings: Settings) -> str:
    """ " · <url|In the docs repository> once merged" with DOCS_REPO on GitHub (docs/docs-repository.md)."""
    if settings.docs_web_dir is None:
        return ""
    url = settings.docs_web_dir + document_filename(incident, settings.tz)
    return f" · <{url}|In the docs repository> once merged"


_MENTION = re.compile(r"^<@[UW][A-Z0-9]+>$")


def timeline_line(entry: TimelineEntry, settings: Settings) -> str:
    """A timeline entry as one mrkdwn line: when, who (a Slack author stays a mention), what, and a link."""
    when = format_instant(entry.occurred_at, settings.tz, "%Y-%m-%d %H:%M")
    who = ""
    if entry.author:
        who = " " + (entry.author if _MENTION.match(entry.author) else escape_mrkdwn(entry.author))
    text = " ".join(entry.text.split())
    # A pinned message is Slack's mrkdwn, escaped by Slack already; PagerDuty's text is plain.
    if entry.kind == "message":
        text = truncate_mrkdwn(slack_message_mrkdwn(text), 300)
    else:
        text = escape_mrkdwn(text, 300)
    link = f" <{entry.permalink}|link>" if entry.permalink else ""
    return f"• *{when}*{who}: {text}{link}"


def enqueue_publication(
    *, session: Session, incident: Incident, result: SaveResult, settings: Settings, at: datetime
) -> None:
    """A publish: the summary in the post-mortems channel (posted once, then updated in place), a threaded
    confirmation in the incident channel, and the Markdown document attached to that thread."""
    postmortem = result.postmortem
    revision = result.revision.number
    refresh_summary(
        session=session,
        incident=incident,
        postmortem=postmortem,
        settings=settings,
        reason=f"r{revision}",
        at=at,
    )
    public = shown_publicly(incident, postmortem)
    where_to = reply_under_card(session, incident, settings=settings, postmortem=postmortem)
    if where_to is None:
        return
    channel, thread_of, instead = where_to
    verb = "published" if result.first_publication else f"updated (revision {revision})"
    where = f" and summarised in {channel_mention(settings.postmortems_channel)}" if public else ""
    enqueue(
        session,
        key=f"published:{incident.id}:r{revision}",
        channel=channel,
        at=at,
        thread_of=thread_of,
        instead=instead,
        text=f":memo: Post-mortem {verb} by <@{postmortem.published_by}>{where}.",
    )
    enqueue_document(session=session, incident=incident, postmortem=postmortem, settings=settings, at=at)


def enqueue_document(
    *, session: Session, incident: Incident, postmortem: Postmortem, settings: Settings, at: datetime
) -> None:
    """The Markdown document of the post-mortem's current revision, in the thread of the incident card (or
    where replies go when the bot cannot post there, `reply_under_card`)."""
    where_to = reply_under_card(session, incident, settings=settings, postmortem=postmortem)
    if where_to is None:
        return
    channel, thread_of, instead = where_to
    revision = postmortem.revision
    enqueue_upload(
        session,
        key=f"document:{incident.id}:r{revision}",
        channel=channel,
        at=at,
        filename=f"postmortem-{display_id(incident).lstrip('#')}-r{revision}.md",
        content=(postmortem.document or "").encode(),
        title=f"Post-mortem: {incident.title}",
        thread_of=thread_of,
        instead=instead,
    )


def elsewhere(
    session: Session, incident: Incident, *, settings: Settings, postmortem: Postmortem | None
) -> dict[str, str] | None:
    """Where a reply meant for the incident's channel goes when the bot cannot post there (archived,
    deleted, the bot removed): the summary's thread in the post-mortems channel for an incident shown
    publicly, else the DM of whoever published its post-mortem (None: no one to tell)."""
    if shown_publicly(incident, postmortem):
        summary = summary_key(incident)
        owed = (
            session.get(SlackMessage, summary) is not None
            or session.exec(select(OutboxMessage.id).where(OutboxMessage.message_key == summary)).first()
            is not None
        )
        where = {"channel": settings.postmortems_channel}
        return {**where, "thread_of": summary} if owed else where
    person = postmortem.published_by if postmortem is not None else None
    return {"channel": person} if person else None


def enqueue_removal_notice(
    *,
    session: Session,
    incident: Incident,
    postmortem: Postmortem | None,
    channel_id: str,
    person: str,
    settings: Settings,
    at: datetime,
) -> None:
    """Tell the person who removed the bot from an incident's channel, once, that it stays out and where
    what it posts about the incident goes instead (`elsewhere`)."""
    instead = (
        f"the thread of its summary in {channel_mention(settings.postmortems_channel)}"
        if shown_publicly(incident, postmortem)
        else "the direct messages of whoever publishes its post-mortem"
    )
    enqueue(
        session,
        key=f"removed:{channel_id}",
        channel=person,
        at=at,
        text=(
            f"I was removed from <#{channel_id}> and will not rejoin it by myself. What I post about "
            f"incident {display_id(incident)} will go to {instead}; invite me back to have it there again."
        ),
    )


def reply_under_card(
    session: Session, incident: Incident, *, settings: Settings, postmortem: Postmortem | None
) -> tuple[str, str | None, dict[str, str] | None] | None:
    """(channel, thread_of, instead) of a reply under the incident's card: there while the bot may post
    in its channel (and `elsewhere` should Slack refuse it meanwhile), else `elsewhere` directly."""
    instead = elsewhere(session, incident, settings=settings, postmortem=postmortem)
    if incident.channel_id and reachable(channel_state(session, incident.channel_id)):
        return incident.channel_id, card_key(incident), instead
    if instead is None:
        return None
    return instead["channel"], instead.get("thread_of"), None


def refresh_summary(
    *,
    session: Session,
    incident: Incident,
    postmortem: Postmortem,
    settings: Settings,
    reason: str,
    at: datetime,
) -> None:
    """Post the summary in the post-mortems channel, or update it in place (a republish, an action item
    done, a restore); `reason` makes each change one outbox row. Nothing leaves a private channel unless
    the post-mortem was shared."""
    if postmortem.published_at is None:
        return
    if shown_publicly(incident, postmortem):
        text, summary = summary_message(
            session=session, incident=incident, postmortem=postmortem, settings=settings
        )
    elif session.get(SlackMessage, summary_key(incident)) is not None:
        # Un-shared after it was public (the box unticked, or an unshared revision restored): withdraw the
        # summary that is already in the public channel rather than leave the details there.
        text = f"The summary of post-mortem {display_id(incident)} was withdrawn: its incident is private."
        summary = [blocks.section(text)]
    else:
        return
    enqueue(
        session,
        key=f"{summary_key(incident)}:{reason}",
        channel=settings.postmortems_channel,
        at=at,
        message_key=summary_key(incident),
        text=text,
        blocks=summary,
    )
