"""Block Kit builders and every Slack id the bot uses (callback, block and action ids), kept in one place.

Builders return plain dicts in Slack's shapes. Limits they respect (Slack rejects the call otherwise):
50 blocks per message, 100 per modal, 3,000 characters of section text, 150 of header text, 24 of a
modal title, 3,000 of private_metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.postmortems import SEVERITIES, ActionItemInput, PostmortemDraft
from bot.rendering import escape_mrkdwn, format_instant

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from bot.home import HomeContent

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
    return {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}


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


# --- The post-mortem modal -------------------------------------------------------------------------


@dataclass
class ModalContent:
    """What the post-mortem modal shows: the saved draft, or what was typed (on re-render)."""

    incident_id: int
    incident_title: str
    draft: PostmortemDraft
    channel_is_private: bool = False
    # One empty row is always offered, so adding the first item needs no click.
    extra_rows: int = 1
    status_note: str | None = None


def _text_input(
    block_id: str, label: str, value: str, *, multiline: bool, optional: bool, placeholder: str
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": Action.INPUT,
        "multiline": multiline,
        "max_length": MAX_PLAIN_INPUT,
        "placeholder": plain(placeholder, 150),
    }
    if value:
        element["initial_value"] = value[:MAX_PLAIN_INPUT]
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "optional": optional,
        "element": element,
    }


def postmortem_modal(content: ModalContent) -> dict[str, Any]:
    """The post-mortem modal. Required fields are enforced by Slack's client and again on the server."""
    draft = content.draft
    blocks: list[dict[str, Any]] = [
        section(f"*{escape_mrkdwn(truncate(content.incident_title, 300))}*"),
        _text_input(
            Block.SUMMARY,
            "Summary",
            draft.summary,
            multiline=True,
            optional=False,
            placeholder="What happened, in two or three sentences",
        ),
        _text_input(
            Block.IMPACT,
            "Impact",
            draft.impact,
            multiline=True,
            optional=True,
            placeholder="Who was affected, how, and for how long",
        ),
        _text_input(
            Block.ROOT_CAUSE,
            "Root cause",
            draft.root_cause,
            multiline=True,
            optional=False,
            placeholder="Why it happened",
        ),
        _text_input(
            Block.RESOLUTION,
            "Resolution",
            draft.resolution,
            multiline=True,
            optional=False,
            placeholder="What fixed it",
        ),
        _severity_input(draft.severity),
        _text_input(
            Block.SERVICES,
            "Affected services",
            draft.services_text,
            multiline=False,
            optional=True,
            placeholder="checkout, payments-api",
        ),
        _text_input(
            Block.RESOLUTION_MINUTES,
            "Resolution time (minutes)",
            draft.resolution_minutes_text,
            multiline=False,
            optional=True,
            placeholder="Derived from the incident when known",
        ),
    ]
    if content.channel_is_private:
        blocks.append(_share_publicly_input(draft.share_publicly))
    blocks.append(header("Action items"))
    rows = draft.action_items + [ActionItemInput() for _ in range(content.extra_rows)]
    rows, not_shown = rows[:MAX_ACTION_ITEM_ROWS], rows[MAX_ACTION_ITEM_ROWS:]
    for index, item in enumerate(rows):
        blocks.extend(_action_item_row(index, item))
    buttons = [button("Save draft", Action.SAVE_DRAFT)]
    if len(rows) < MAX_ACTION_ITEM_ROWS:
        buttons.insert(0, button("Add action item", Action.ADD_ACTION_ITEM))
    blocks.append({"type": "actions", "block_id": Block.MODAL_ACTIONS, "elements": buttons})
    if content.status_note:
        blocks.append(
            {"type": "context", "block_id": Block.DRAFT_STATUS, "elements": [mrkdwn(content.status_note)]}
        )
    # Which saved item each row edits, and the saved items there was no room for (kept on save).
    metadata = json.dumps(
        {
            "incident_id": content.incident_id,
            "rows": len(rows),
            "item_ids": [item.item_id for item in rows],
            "hidden_item_ids": [item.item_id for item in not_shown if item.item_id is not None]
            + list(draft.hidden_item_ids),
        }
    )
    return {
        "type": "modal",
        "callback_id": Callback.POSTMORTEM_MODAL,
        "title": plain("Post-mortem"),
        "submit": plain("Publish"),
        "close": plain("Cancel"),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def _severity_input(severity: str | None) -> dict[str, Any]:
    options = [{"text": plain(SEVERITY_LABELS[s]), "value": s} for s in SEVERITIES]
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": Action.SEVERITY_SELECT,
        "placeholder": plain("Choose a severity"),
        "options": options,
    }
    if severity in SEVERITY_LABELS:
        element["initial_option"] = options[SEVERITIES.index(severity)]
    return {
        "type": "input",
        "block_id": Block.SEVERITY,
        "label": plain("Severity"),
        "optional": False,
        "element": element,
    }


def _share_publicly_input(checked: bool) -> dict[str, Any]:
    option = {
        "text": plain("Post the summary in the public post-mortems channel"),
        "description": plain("This incident is in a private channel; by default no details leave it."),
        "value": "share",
    }
    element: dict[str, Any] = {"type": "checkboxes", "action_id": Action.SHARE_CHECKBOX, "options": [option]}
    if checked:
        element["initial_options"] = [option]
    return {
        "type": "input",
        "block_id": Block.SHARE_PUBLICLY,
        "label": plain("Visibility"),
        "optional": True,
        "element": element,
    }


def _action_item_row(index: int, item: ActionItemInput) -> list[dict[str, Any]]:
    text_input = _text_input(
        row_block_id(Block.ACTION_TEXT, index),
        f"Action item {index + 1}",
        item.text,
        multiline=False,
        optional=True,
        placeholder="What will be done",
    )
    owner: dict[str, Any] = {
        "type": "users_select",
        "action_id": Action.OWNER_SELECT,
        "placeholder": plain("Owner"),
    }
    if item.owner_id:
        owner["initial_user"] = item.owner_id
    due: dict[str, Any] = {
        "type": "datepicker",
        "action_id": Action.DUE_PICKER,
        "placeholder": plain("Due date (optional)"),
    }
    if item.due_date:
        due["initial_date"] = item.due_date.isoformat()
    return [
        DIVIDER,
        text_input,
        {
            "type": "input",
            "block_id": row_block_id(Block.ACTION_OWNER, index),
            "label": plain("Owner"),
            "optional": True,
            "element": owner,
        },
        {
            "type": "input",
            "block_id": row_block_id(Block.ACTION_DUE, index),
            "label": plain("Due date"),
            "optional": True,
            "element": due,
        },
    ]


def modal_metadata(view: dict[str, Any]) -> dict[str, Any]:
    return json.loads(view.get("private_metadata") or "{}")


def read_modal(view: dict[str, Any]) -> PostmortemDraft:
    """What the person typed, from the view state of a submission or of a block action in the modal."""
    values: dict[str, dict[str, Any]] = view.get("state", {}).get("values", {})

    def element(block_id: str) -> dict[str, Any]:
        return next(iter(values.get(block_id, {}).values()), {})

    def text(block_id: str) -> str:
        return element(block_id).get("value") or ""

    severity = (element(Block.SEVERITY).get("selected_option") or {}).get("value")
    shared = element(Block.SHARE_PUBLICLY).get("selected_options") or []
    metadata = modal_metadata(view)
    rows = metadata.get("rows", 0)
    item_ids = metadata.get("item_ids") or [None] * rows
    items = []
    for row in range(rows):
        due = element(row_block_id(Block.ACTION_DUE, row)).get("selected_date")
        items.append(
            ActionItemInput(
                text=text(row_block_id(Block.ACTION_TEXT, row)),
                owner_id=element(row_block_id(Block.ACTION_OWNER, row)).get("selected_user"),
                due_date=date.fromisoformat(due) if due else None,
                item_id=item_ids[row] if row < len(item_ids) else None,
            )
        )
    return PostmortemDraft(
        summary=text(Block.SUMMARY),
        impact=text(Block.IMPACT),
        root_cause=text(Block.ROOT_CAUSE),
        resolution=text(Block.RESOLUTION),
        severity=severity,
        services_text=text(Block.SERVICES),
        resolution_minutes_text=text(Block.RESOLUTION_MINUTES),
        share_publicly=any(option.get("value") == "share" for option in shared),
        action_items=items,
        hidden_item_ids=tuple(metadata.get("hidden_item_ids") or ()),
    )


_ROW_FIELDS = {"text": Block.ACTION_TEXT, "owner": Block.ACTION_OWNER, "due": Block.ACTION_DUE}


def modal_errors(errors: dict[str, str]) -> dict[str, str]:
    """Map the service's field errors ("root_cause", "action_items.2.owner") to the modal's block ids."""
    mapped: dict[str, str] = {}
    for name, message in errors.items():
        if name.startswith("action_items."):
            _, row, part = name.split(".")
            mapped[row_block_id(_ROW_FIELDS[part], int(row))] = message
        else:
            mapped[Block(name)] = message
    return mapped


# --- Messages --------------------------------------------------------------------------------------


def summary_message(
    *,
    title: str,
    incident_ref: str,
    body: str,
    fallback: str,
    severity: str | None,
    services: Sequence[str],
    resolution_time: str,
    channel_id: str | None,
    action_items: Sequence[tuple[str, str | None, date | None, bool]],
    footer: str,
    action_item_ids: Sequence[int] | None = None,
    timeline: Sequence[str] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """The summary posted to the post-mortems channel: (fallback text, blocks).

    Long bodies are cut to Slack's section limit with a pointer to the full document in the thread.
    `timeline` holds ready mrkdwn lines (escaped by the caller); with `action_item_ids` (parallel to
    `action_items`), each open item gets a "Mark done" button whose value is the item's id.
    """
    fields = [
        mrkdwn(f"*Severity*\n{severity or '—'}"),
        mrkdwn(f"*Services*\n{escape_mrkdwn(', '.join(services)) or '—'}"),
        mrkdwn(f"*Resolution time*\n{resolution_time}"),
    ]
    if channel_id:
        fields.append(mrkdwn(f"*Incident channel*\n<#{channel_id}>"))
    blocks: list[dict[str, Any]] = [
        header(f"Post-mortem {incident_ref}: {title}"),
        {"type": "section", "fields": fields},
        section(
            body
            if len(body) <= MAX_SECTION_TEXT
            else truncate(body, MAX_SECTION_TEXT - 60)
            + "\n_Cut short here; the full document is in the thread._"
        ),
    ]
    if timeline:
        lines = "\n".join(timeline)
        cut = "\n_…the whole timeline is in the document._"
        if len(lines) > MAX_SECTION_TEXT - 20:
            lines = truncate(lines, MAX_SECTION_TEXT - 80) + cut
        blocks.append(section(f"*Timeline*\n{lines}"))
    if action_items:
        blocks.append(DIVIDER)
        shown = action_items[: MAX_MESSAGE_BLOCKS - 8]
        for index, (text, owner, due, done) in enumerate(shown):
            mark = ":white_check_mark:" if done else ":white_square:"
            who = f"<@{owner}>" if owner else "unassigned"
            when = f", due {due.isoformat()}" if due else ""
            extra: dict[str, Any] = {}
            if action_item_ids is not None and not done:
                item_id = str(action_item_ids[index])
                extra["accessory"] = button("Mark done", Action.MARK_ACTION_DONE, value=item_id)
            blocks.append(section(f"{mark} {escape_mrkdwn(truncate(text, 2800))} ({who}{when})", **extra))
        if len(action_items) > len(shown):
            blocks.append(
                context(f"…and {len(action_items) - len(shown)} more action items in the document.")
            )
    blocks.append(context(footer))
    return fallback, blocks


def resolve_prompt(*, incident_id: int, incident_ref: str, minutes: int) -> tuple[str, list[dict[str, Any]]]:
    """Posted in the incident channel on resolve: the resolution time and a button to write it up."""
    after = f"{minutes} minute{'s' if minutes != 1 else ''}"
    text = (
        f":white_check_mark: Incident {incident_ref} resolved after {after}. Time to write the post-mortem."
    )
    return text, [
        section(f"{text}\nWhat happened, why, and what will stop it happening again?"),
        {
            "type": "actions",
            "block_id": Block.RESOLVE_PROMPT,
            "elements": [
                button(
                    "Write the post-mortem", Action.OPEN_POSTMORTEM, value=str(incident_id), style="primary"
                )
            ],
        },
    ]


def incident_card(
    *, title: str, incident_ref: str, status: str, fields: Sequence[tuple[str, str]], link: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """The incident card in the incident channel, updated in place on every change."""
    emoji = {
        "triggered": ":red_circle:",
        "acknowledged": ":large_orange_circle:",
        "resolved": ":large_green_circle:",
    }
    text = f"{emoji.get(status, '')} Incident {incident_ref} {status}: {escape_mrkdwn(title)}".strip()
    blocks: list[dict[str, Any]] = [
        header(f"Incident {incident_ref}: {title}"),
        section(f"{emoji.get(status, '')} *{status.capitalize()}*"),
        {"type": "section", "fields": [mrkdwn(f"*{name}*\n{value}") for name, value in fields][:10]},
    ]
    if link:
        blocks.append(context(f"<{link}|Open in PagerDuty>"))
    return text, blocks


def feedback_message(
    *, title: str, body: str, fallback: str, footer: str | None = None
) -> tuple[str, list[dict]]:
    """A scheduled message (retro reminder, digest, win, alert): a header, the rendered mrkdwn body cut
    into sections at paragraph breaks (each under Slack's section limit), and an optional footer."""
    sections: list[dict[str, Any]] = []
    chunk = ""
    for paragraph in body.strip().split("\n\n"):
        candidate = f"{chunk}\n\n{paragraph}" if chunk else paragraph
        if len(candidate) > MAX_SECTION_TEXT and chunk:
            sections.append(section(chunk))
            candidate = paragraph
        chunk = candidate
    if chunk:
        sections.append(section(chunk))
    message = [header(title), *sections[: MAX_MESSAGE_BLOCKS - 2]]
    if footer:
        message.append(context(footer))
    return fallback, message


def nudge_message(
    *, body: str, fallback: str, snooze_value: str, open_incident_id: int | None = None
) -> tuple[str, list[dict]]:
    """A reminder to one person or channel, with a snooze button (and a way to write the post-mortem)."""
    buttons = []
    if open_incident_id is not None:
        buttons.append(
            button("Write the post-mortem", Action.OPEN_POSTMORTEM, str(open_incident_id), "primary")
        )
    buttons.append(button("Snooze 1 day", Action.SNOOZE_NUDGE, snooze_value))
    return fallback, [section(body), {"type": "actions", "elements": buttons}]


# --- App Home --------------------------------------------------------------------------------------

MAX_HOME_ITEMS = 40
MAX_HOME_OWED = 20


def app_home(content: HomeContent, *, tz: ZoneInfo, target_minutes: int) -> dict[str, Any]:
    """A person's App Home tab: open action items with "Mark done", the post-mortems they owe with
    "Write the post-mortem", and the team's KPIs. Long lists are cut so the view stays under Slack's
    100 blocks: at most 40 + 20 rows and ~12 other blocks."""

    def row(base: Block, row_id: int, text: str, label: str, action: Action) -> dict[str, Any]:
        """One line with its button; the button's value is the row's id."""
        return section(
            text, block_id=row_block_id(base, row_id), accessory=button(label, action, value=str(row_id))
        )

    def channel(channel_id: str | None) -> str:
        return f" in <#{channel_id}>" if channel_id else ""

    view_blocks: list[dict[str, Any]] = [header("Your action items")]
    items = content.action_items
    for item in items[:MAX_HOME_ITEMS]:
        due = f" · due {item.due_date.isoformat()}" if item.due_date else ""
        title = escape_mrkdwn(truncate(item.incident_title, 200))
        where = f"{item.incident_ref} {title}{channel(item.channel_id)}{due}"
        text = f"{escape_mrkdwn(truncate(item.text, 2500))}\n_{where}_"
        view_blocks.append(row(Block.HOME_ITEM, item.id or 0, text, "Mark done", Action.MARK_ACTION_DONE))
    if not items:
        view_blocks.append(context("No open action items. :tada:"))
    elif len(items) > MAX_HOME_ITEMS:
        view_blocks.append(context(f"…and {len(items) - MAX_HOME_ITEMS} more (`/postmortem actions`)."))

    view_blocks += [DIVIDER, header("Post-mortems you owe")]
    for owed in content.owed[:MAX_HOME_OWED]:
        resolved = (
            f"resolved {format_instant(owed.resolved_at, tz, '%a %d %b %H:%M %Z')}"
            if owed.resolved_at
            else "not resolved yet"
        )
        title = escape_mrkdwn(truncate(owed.title, 300))
        text = f"*{owed.incident_ref}* {title}{channel(owed.channel_id)}\n_{resolved} · {owed.status}_"
        view_blocks.append(
            row(Block.HOME_OWED, owed.incident_id, text, "Write the post-mortem", Action.OPEN_POSTMORTEM)
        )
    if not content.owed:
        view_blocks.append(context("You owe no post-mortems."))
    elif len(content.owed) > MAX_HOME_OWED:
        view_blocks.append(context(f"…and {len(content.owed) - MAX_HOME_OWED} more."))

    period = (
        f"{format_instant(content.since, tz, '%d %b')} to {format_instant(content.until, tz, '%d %b %Y')}"
    )
    view_blocks += [
        DIVIDER,
        header("Team KPIs, last 30 days"),
        section("\n".join(f"*{label}:* {value}" for label, value in content.kpis), block_id=Block.HOME_KPIS),
        context(f"Incidents triggered {period} · response target {target_minutes} min"),
    ]
    return {"type": "home", "callback_id": Callback.APP_HOME, "blocks": view_blocks}
