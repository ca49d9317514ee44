"""`/postmortem` and its subcommands."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.clock import utcnow
from bot.core.errors import UserError
from bot.core.rendering import escape_mrkdwn, format_duration
from bot.flows import incidents, lookups, postmortems
from bot.flows.context import Runtime
from bot.slack import blocks

USAGE = """*How to use `/postmortem`*
• `/postmortem`: write the post-mortem of this channel's incident (opens a form, pre-filled with the draft)
• `/postmortem new <title>`: declare an incident in this channel, without PagerDuty
• `/postmortem resolve`: mark this channel's incident resolved now (PagerDuty incidents resolve by themselves)
• `/postmortem list`: recent incidents and their post-mortem status
• `/postmortem actions`: your open action items, soonest due first
• `/postmortem runbooks`: the runbook check (stale runbooks, services without one), as of the last fetch
• `/postmortem history`: the post-mortem's revisions (who changed which fields, when)
• `/postmortem restore <revision>`: bring back an earlier revision (saved as a new revision)
• `/postmortem help`: this message"""


def handle_postmortem_command(ack: Ack, command: dict[str, Any], client: WebClient, runtime: Runtime) -> None:
    """Route `/postmortem [new <title> | resolve | list | ...]`. Anything unknown gets the usage."""
    text = (command.get("text") or "").strip()
    subcommand, _, rest = text.partition(" ")
    channel_id, user_id = command["channel_id"], command["user_id"]
    match subcommand.lower():
        case "":
            _open_form(ack, command, client, runtime)
        case "new":
            channel = _visible_channel(client, channel_id)
            ref = incidents.declare(runtime, channel=channel, title=rest, user_id=user_id, at=utcnow())
            ack(
                response_type="ephemeral",
                text=f"Declared incident {ref}. Its timings start now; run `/postmortem` here when you are "
                "ready to write it up.",
            )
        case "resolve":
            ref, seconds = incidents.resolve(runtime, channel_id=channel_id, at=utcnow())
            ack(response_type="ephemeral", text=f"Incident {ref} resolved after {format_duration(seconds)}.")
        case "actions":
            ack(response_type="ephemeral", text=lookups.my_actions(runtime, user_id))
        case "runbooks":
            ack(response_type="ephemeral", text=lookups.runbook_report(runtime, utcnow()))
        case "list":
            ack(response_type="ephemeral", text=lookups.incident_list(runtime))
        case "history":
            ack(response_type="ephemeral", text=lookups.history(runtime, channel_id))
        case "restore":
            number = rest.strip()
            if not number.isdigit():
                raise UserError(
                    "Say which revision to restore: `/postmortem restore 2` (see `/postmortem history`)."
                )
            new = postmortems.restore(
                runtime, client, channel_id=channel_id, number=int(number), user_id=user_id, at=utcnow()
            )
            ack(
                response_type="ephemeral",
                text=f"Restored revision {number} as revision {new}. Run `/postmortem` to review it.",
            )
        case "help":
            ack(response_type="ephemeral", text=USAGE)
        case _:
            ack(response_type="ephemeral", text=f"I don't know `{escape_mrkdwn(subcommand)}`.\n\n{USAGE}")


def _open_form(ack: Ack, command: dict[str, Any], client: WebClient, runtime: Runtime) -> None:
    incident = incidents.incident_in_channel(runtime, command["channel_id"])
    if incident is None or incident.id is None:
        ack(
            response_type="ephemeral",
            text="This channel isn't linked to an incident yet. Declare one with `/postmortem new <title>`, "
            "or run `/postmortem list` to find the incident's channel.",
        )
        return
    view = postmortems.open_form(
        runtime, client, incident_id=incident.id, user_id=command["user_id"], at=utcnow()
    )
    client.views_open(trigger_id=command["trigger_id"], view=view)
    ack()


def _visible_channel(client: WebClient, channel_id: str) -> dict[str, Any]:
    try:
        channel: dict[str, Any] = client.conversations_info(channel=channel_id)["channel"]
    except SlackApiError as exc:
        raise UserError(
            "I can't see this channel. Invite me first (`/invite @postmortem-bot`), "
            "then declare the incident again."
        ) from exc
    return channel


def register(app: App) -> None:
    app.command(blocks.COMMAND)(handle_postmortem_command)
