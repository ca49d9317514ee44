"""`/postmortem` and its subcommands."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot import blocks
from bot.action_items import open_items_for
from bot.app import runtime_of
from bot.clock import utcnow
from bot.db import read_scope, session_scope
from bot.errors import UserError
from bot.incidents import (
    declare_incident,
    display_id,
    incident_for_channel,
    public_title,
    recent_incidents,
    resolve_incident,
)
from bot.models import Incident, Postmortem
from bot.notices import enqueue_incident_card, enqueue_resolve_prompt, refresh_summary
from bot.postmortems import postmortem_for, restore_revision, revisions_of
from bot.rendering import escape_mrkdwn, format_duration, format_instant
from handlers.modal import check_editor, open_postmortem_modal

USAGE = """*How to use `/postmortem`*
• `/postmortem`: write the post-mortem of this channel's incident (opens a form, pre-filled with the draft)
• `/postmortem new <title>`: declare an incident in this channel, without PagerDuty
• `/postmortem resolve`: mark this channel's incident resolved now (PagerDuty incidents resolve by themselves)
• `/postmortem list`: recent incidents and their post-mortem status
• `/postmortem actions`: your open action items, soonest due first
• `/postmortem history`: the post-mortem's revisions (who changed which fields, when)
• `/postmortem restore <revision>`: bring back an earlier revision (saved as a new revision)
• `/postmortem help`: this message"""


def handle_postmortem_command(
    ack: Ack, command: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """Route `/postmortem [new <title> | list | help]`. Anything unknown gets the usage, never an error."""
    text = (command.get("text") or "").strip()
    subcommand, _, rest = text.partition(" ")
    match subcommand.lower():
        case "":
            _open_for_channel(ack, command, client, context)
        case "new":
            _declare(ack, command, client, context, title=rest)
        case "resolve":
            _resolve(ack, command, context)
        case "actions":
            ack(response_type="ephemeral", text=_my_actions(context, command["user_id"]))
        case "list":
            ack(response_type="ephemeral", text=_incident_list(context))
        case "history":
            ack(response_type="ephemeral", text=_history(command, context))
        case "restore":
            _restore(ack, command, client, context, number=rest.strip())
        case "help":
            ack(response_type="ephemeral", text=USAGE)
        case _:
            ack(response_type="ephemeral", text=f"I don't know `{escape_mrkdwn(subcommand)}`.\n\n{USAGE}")


def _open_for_channel(ack: Ack, command: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    runtime = runtime_of(context)
    with read_scope(runtime.engine) as session:
        incident = incident_for_channel(session=session, channel_id=command["channel_id"])
        incident_id = incident.id if incident else None
    if incident_id is None:
        ack(
            response_type="ephemeral",
            text="This channel isn't linked to an incident yet. Declare one with `/postmortem new <title>`, "
            "or run `/postmortem list` to find the incident's channel.",
        )
        return
    open_postmortem_modal(
        runtime=runtime,
        client=client,
        trigger_id=command["trigger_id"],
        incident_id=incident_id,
        user_id=command["user_id"],
    )
    ack()


def _declare(
    ack: Ack, command: dict[str, Any], client: WebClient, context: BoltContext, *, title: str
) -> None:
    runtime = runtime_of(context)
    channel_id = command["channel_id"]
    try:
        channel = client.conversations_info(channel=channel_id)["channel"]
    except SlackApiError as exc:
        raise UserError(
            "I can't see this channel. Invite me first (`/invite @postmortem-bot`), "
            "then declare the incident again."
        ) from exc
    now = utcnow()
    with session_scope(runtime.engine) as session:
        incident = declare_incident(
            session=session,
            title=title,
            channel_id=channel_id,
            channel_name=channel.get("name"),
            channel_is_private=channel.get("is_private", False),
            declared_by=command["user_id"],
            at=now,
        )
        enqueue_incident_card(session=session, incident=incident, settings=runtime.settings, at=now)
        ref = display_id(incident)
    runtime.outbox.wake()
    ack(
        response_type="ephemeral",
        text=f"Declared incident {ref}. Its timings start now; run `/postmortem` here when you are ready "
        "to write it up.",
    )


def _resolve(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
    runtime = runtime_of(context)
    now = utcnow()
    with session_scope(runtime.engine) as session:
        incident = incident_for_channel(session=session, channel_id=command["channel_id"])
        if incident is None:
            raise UserError(
                "This channel isn't linked to an incident. Declare one with `/postmortem new <title>`."
            )
        if resolve_incident(incident=incident, at=now):
            enqueue_incident_card(session=session, incident=incident, settings=runtime.settings, at=now)
            enqueue_resolve_prompt(session=session, incident=incident, at=now)
        ref, took = display_id(incident), format_duration(incident.seconds_to_resolve)
    runtime.outbox.wake()
    ack(
        response_type="ephemeral",
        text=f"Incident {ref} resolved after {took}.",
    )


def _history(command: dict[str, Any], context: BoltContext) -> str:
    runtime = runtime_of(context)
    with read_scope(runtime.engine) as session:
        incident, postmortem = _channel_postmortem(session, command["channel_id"])
        tz = runtime.settings.tz
        lines = [
            f"• *{r.number}* {format_instant(r.created_at, tz)} <@{r.author_id}> {r.action}: "
            + (", ".join(r.changed_fields) or "no changes")
            for r in revisions_of(session=session, postmortem=postmortem)
        ]
    return f"*Revisions of the post-mortem for {display_id(incident)}*\n" + "\n".join(lines)


def _restore(
    ack: Ack, command: dict[str, Any], client: WebClient, context: BoltContext, *, number: str
) -> None:
    if not number.isdigit():
        raise UserError("Say which revision to restore: `/postmortem restore 2` (see `/postmortem history`).")
    runtime = runtime_of(context)
    with read_scope(runtime.engine) as session:
        incident, _ = _channel_postmortem(session, command["channel_id"])
        incident_id = incident.id
    check_editor(
        runtime=runtime,
        client=client,
        user_id=command["user_id"],
        incident_id=incident_id,
        what="restore its post-mortem",
    )
    now = utcnow()
    with session_scope(runtime.engine) as session:
        incident, postmortem = _channel_postmortem(session, command["channel_id"])
        revision = restore_revision(
            session=session,
            incident=incident,
            postmortem=postmortem,
            number=int(number),
            author_id=command["user_id"],
            at=now,
            tz=runtime.settings.tz,
        )
        refresh_summary(
            session=session,
            incident=incident,
            postmortem=postmortem,
            settings=runtime.settings,
            reason=f"r{revision.number}",
            at=now,
        )
    runtime.outbox.wake()
    ack(
        response_type="ephemeral",
        text=f"Restored revision {number} as revision {revision.number}. Run `/postmortem` to review it.",
    )


def _channel_postmortem(session: Session, channel_id: str) -> tuple[Incident, Postmortem]:
    incident = incident_for_channel(session=session, channel_id=channel_id)
    postmortem = postmortem_for(session=session, incident=incident) if incident else None
    if incident is None or postmortem is None or postmortem.revision == 0:
        raise UserError("This channel has no saved post-mortem yet. Run `/postmortem` to start one.")
    return incident, postmortem


def _incident_list(context: BoltContext) -> str:
    runtime = runtime_of(context)
    with read_scope(runtime.engine) as session:
        lines = []
        for incident in recent_incidents(session=session, limit=15):
            postmortem = postmortem_for(session=session, incident=incident)
            status = postmortem.status if postmortem else "not started"
            where = f" in <#{incident.channel_id}>" if incident.channel_id else ""
            lines.append(
                f"• *{display_id(incident)}* {escape_mrkdwn(public_title(incident, postmortem))}{where}: "
                f"incident {incident.status}, post-mortem {status}"
            )
    if not lines:
        return "No incidents yet. Declare one with `/postmortem new <title>`."
    return "*Recent incidents*\n" + "\n".join(lines)


def _my_actions(context: BoltContext, user_id: str) -> str:
    runtime = runtime_of(context)
    with read_scope(runtime.engine) as session:
        items = open_items_for(session=session, owner_id=user_id)
    if not items:
        return "You have no open action items. :tada:"
    lines = []
    for item in items:
        due = f" · due {item.due_date.isoformat()}" if item.due_date else ""
        where = f" in <#{item.channel_id}>" if item.channel_id else ""
        lines.append(
            f"• {escape_mrkdwn(item.text)}{due} · incident *{item.incident_ref}* "
            f"{escape_mrkdwn(item.incident_title)}{where}"
        )
    return f"*Your open action items ({len(items)})*\n" + "\n".join(lines)


def register(app: App) -> None:
    app.command(blocks.COMMAND)(handle_postmortem_command)
