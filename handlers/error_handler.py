"""The one error handler: a domain error becomes a message the user sees; anything else is logged and
answered with an apology that says nothing was lost."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.errors import UserError
from bot.slack.blocks import plain

log = logging.getLogger(__name__)
SORRY = "Something went wrong on our side and it has been logged. Please try again."


def handle_errors(
    error: Exception, body: dict[str, Any], response: BoltResponse | None, client: WebClient
) -> None:
    message = str(error) if isinstance(error, UserError) else SORRY
    if not isinstance(error, UserError):
        log.error("listener failed: %s", error, exc_info=error)
    if response is None:
        return
    if "command" in body:
        _answer(response, {"response_type": "ephemeral", "text": message})
    elif body.get("type") == "view_submission":
        # Keep the person's modal open under a small one that explains what happened.
        _answer(response, {"response_action": "push", "view": _notice_view("Not published", message)})
    elif body.get("type") in ("block_actions", "message_action"):
        _answer(response, {})
        _tell(client, body, message)


def _notice_view(title: str, message: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": plain(title, 24),
        "close": plain("Back"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": message[:3000]}}],
    }


def _tell(client: WebClient, body: dict[str, Any], message: str) -> None:
    """Show `message` to whoever clicked: an ephemeral in a channel; in a modal, a small modal pushed on
    top (the person's typing stays underneath); in the App Home tab, a small modal."""
    user = (body.get("user") or {}).get("id")
    channel = (body.get("channel") or {}).get("id")
    view_type = (body.get("view") or {}).get("type")
    trigger_id = body.get("trigger_id")
    try:
        if channel and user:  # an ephemeral is for one person: without one, only a modal can tell
            try:
                client.chat_postEphemeral(channel=channel, user=user, text=message)
                return
            except SlackApiError:
                # Slack refuses an ephemeral to someone outside the channel (user_not_in_channel), which
                # is exactly who an authorization refusal is for: fall back to a small modal.
                if not trigger_id:
                    raise
        if trigger_id and view_type == "modal":
            client.views_push(trigger_id=trigger_id, view=_notice_view("Not saved", message))
        elif trigger_id:
            client.views_open(trigger_id=trigger_id, view=_notice_view("Not allowed", message))
    except SlackApiError:
        log.warning("could not tell %s about an error", user)


def _answer(response: BoltResponse, payload: dict[str, Any]) -> None:
    response.status = 200
    response.body = json.dumps(payload)
    response.headers["content-type"] = ["application/json;charset=utf-8"]


def register(app: App) -> None:
    app.error(handle_errors)
