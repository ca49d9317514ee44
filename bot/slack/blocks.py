"""Block Kit basics (text objects, sections, buttons) and every Slack id the bot uses (callback, block and
action ids), kept in one place. The surfaces are built in modal_view.py, messages.py and home_view.py.

Builders return plain dicts in Slack's shapes. Limits they respect (Slack rejects the call otherwise):
50 blocks per message, 100 per modal, 3,000 characters of section text, 150 of header text, 24 of a
modal title, 3,000 of private_metadata.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from bot.core.rendering import truncate_mrkdwn

MAX_MESSAGE_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_PLAIN_INPUT = 3000
# Each action item takes four blocks (divider + text, owner, due date); the rest of the modal takes ~15.
MAX_ACTION_ITEM_ROWS = 20


COMMAND = "/postmortem"


class Callback(StrEnum):
    POSTMORTEM_MODAL = "postmortem_modal"
    APP_HOME = "app_home"
    ADD_TO_TIMELINE = "add_to_timeline"


class Block(StrEnum):
    SUMMARY = "summary"
    IMPACT = "impact"
    ROOT_CAUSE = "root_cause"
    RESOLUTION = "resolution"
    SEVERITY = "severity"
    SERVICES = "services"
    RESOLUTION_MINUTES = "resolution_minutes"
    SHARE_PUBLICLY = "share_publicly"
    DRAFT_STATUS = "draft_status"
    MODAL_ACTIONS = "modal_actions"
    # Action item rows are numbered: "action_text_0", "action_owner_0", "action_due_0".
    ACTION_TEXT = "action_text"
    ACTION_OWNER = "action_owner"
    ACTION_DUE = "action_due"
    RESOLVE_PROMPT = "resolve_prompt"
    # Summary rows are numbered by action item id: "action_item_42".
    ACTION_ITEM = "action_item"
    # App Home rows: "home_item_42" (an action item), "home_owed_7" (an incident's post-mortem).
    HOME_ITEM = "home_item"
    HOME_OWED = "home_owed"
    HOME_KPIS = "home_kpis"


class Action(StrEnum):
    INPUT = "input"
    SEVERITY_SELECT = "severity_select"
    OWNER_SELECT = "owner_select"
    DUE_PICKER = "due_picker"
    SHARE_CHECKBOX = "share_checkbox"
    ADD_ACTION_ITEM = "add_action_item"
    SAVE_DRAFT = "save_draft"
    OPEN_POSTMORTEM = "open_postmortem"
    MARK_ACTION_DONE = "mark_action_done"
    # The snooze button on a reminder; its value names what is snoozed ("postmortem:<incident id>",
    # "action_item:<id>").
    SNOOZE_NUDGE = "snooze_nudge"
    # "Open a channel" on an incident listed in TRIAGE_CHANNEL; its value is the incident id.
    OPEN_CHANNEL = "open_channel"


def row_block_id(base: Block, row: int) -> str:
    return f"{base}_{row}"


SEVERITY_LABELS = {
    "SEV1": "SEV1 · critical, customer-facing outage",
    "SEV2": "SEV2 · major, degraded for many",
    "SEV3": "SEV3 · minor, degraded for some",
    "SEV4": "SEV4 · low, no customer impact",
}


def plain(text: str, limit: int | None = None) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) if limit else text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate_mrkdwn(text, MAX_SECTION_TEXT)}


def truncate(text: str, limit: int, suffix: str = "…") -> str:
    """Shorten to Slack's limit, marking the cut, so a long field never makes Slack refuse the call."""
    return text if len(text) <= limit else text[: limit - len(suffix)] + suffix


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text), **extra}


def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts]}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, 75), "action_id": action_id}
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    return element


DIVIDER: dict[str, Any] = {"type": "divider"}
