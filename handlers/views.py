"""Submissions of the post-mortem modal."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.clock import utcnow
from bot.flows import postmortems
from bot.flows.context import Runtime
from bot.slack import blocks, modal_view


def handle_postmortem_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, runtime: Runtime
) -> None:
    """Publish. Invalid fields answer `response_action: errors` so the modal stays open with what was
    typed and the message under the offending input."""
    result = postmortems.save(
        runtime,
        client,
        incident_id=modal_view.modal_metadata(view)["incident_id"],
        draft=modal_view.read_modal(view),
        user_id=body["user"]["id"],
        publish=True,
        at=utcnow(),
        submission_key=modal_view.submission_key(view, "publish"),
    )
    if isinstance(result, dict):
        ack(response_action="errors", errors=modal_view.modal_errors(result))
        return
    ack()


def register(app: App) -> None:
    app.view(blocks.Callback.POSTMORTEM_MODAL)(handle_postmortem_submission)
