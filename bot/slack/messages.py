"""The messages the bot posts: the incident card, the resolve prompt, the post-mortem summary, the
feedback of a scheduled job and a nudge. Each builder returns (fallback text, blocks).

A message holds at most 50 blocks and 3,000 characters of section text (Slack refuses more).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from bot.core.rendering import escape_mrkdwn, truncate_mrkdwn
from bot.domain.action_items import IssueRef
from bot.domain.owners import Owner, OwnerKind
from bot.slack.blocks import (
    DIVIDER,
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    Action,
    Block,
    button,
    context,
    header,
    mrkdwn,
    section,
)


def issue_link(issue: IssueRef | None) -> str:
    """ " · <url|OPS-12> done" after an item that has an issue in the tracker; "" otherwise."""
    if issue is None:
        return ""
    return f" · <{issue.url}|{escape_mrkdwn(issue.key)}> {'done' if issue.done else 'open'}"


def owner_text(owner: Owner) -> str:
    """A service's owner as mrkdwn: a user is a mention; a user group's handle is shown as text (a group
    mention needs the group's id, `<!subteam^S0123>`, which only `usergroups.list` gives:
    docs/service-owners.md); a PagerDuty team or policy by its name, linked to its PagerDuty page."""
    if owner.kind == OwnerKind.SLACK_USER:
        return f"<@{owner.name}>"
    if owner.kind == OwnerKind.SLACK_GROUP:
        return escape_mrkdwn(owner.name)
    what = "PagerDuty team" if owner.kind == OwnerKind.TEAM else "escalation policy"
    name = escape_mrkdwn(owner.name).replace("|", "¦")
    return f"<{owner.url}|{name}> ({what})" if owner.url else f"{name} ({what})"


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
    issues: Sequence[IssueRef | None] = (),
    owner: Owner | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The summary posted to the post-mortems channel: (fallback text, blocks).

    Long bodies are cut to Slack's section limit with a pointer to the full document in the thread.
    `timeline` holds ready mrkdwn lines (escaped by the caller); with `action_item_ids` (parallel to
    `action_items`), each open item gets a "Mark done" button whose value is the item's id; `issues`
    (parallel too) adds each item's issue in the tracker with its state.
    """
    fields = [
        mrkdwn(f"*Severity*\n{severity or '—'}"),
        mrkdwn(f"*Services*\n{escape_mrkdwn(', '.join(services)) or '—'}"),
        *([mrkdwn(f"*Owner*\n{owner_text(owner)}")] if owner else []),
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
            else truncate_mrkdwn(body, MAX_SECTION_TEXT - 60)
            + "\n_Cut short here; the full document is in the thread._"
        ),
    ]
    if timeline:
        lines = "\n".join(timeline)
        cut = "\n_…the whole timeline is in the document._"
        if len(lines) > MAX_SECTION_TEXT - 20:
            lines = truncate_mrkdwn(lines, MAX_SECTION_TEXT - 80) + cut
        blocks.append(section(f"*Timeline*\n{lines}"))
    if action_items:
        blocks.append(DIVIDER)
        shown = action_items[: MAX_MESSAGE_BLOCKS - 8]
        for index, (text, item_owner, due, done) in enumerate(shown):
            mark = ":white_check_mark:" if done else ":white_square:"
            who = f"<@{item_owner}>" if item_owner else "unassigned"
            when = f", due {due.isoformat()}" if due else ""
            extra: dict[str, Any] = {}
            if action_item_ids is not None and not done:
                item_id = str(action_item_ids[index])
                extra["accessory"] = button("Mark done", Action.MARK_ACTION_DONE, value=item_id)
            issue = issue_link(issues[index] if index < len(issues) else None)
            text = escape_mrkdwn(text, 2800, suffix="… (the whole item is in the document)")
            blocks.append(section(f"{mark} {text} ({who}{when}){issue}", **extra))
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


def reopened_prompt(*, incident_ref: str) -> tuple[str, list[dict[str, Any]]]:
    """The resolve prompt while its incident lives again: no button, the write-up waits for the end."""
    text = (
        f":arrows_counterclockwise: Incident {incident_ref} was reopened in PagerDuty: it is live again. "
        "The post-mortem waits for its final resolution; this message will say when."
    )
    return text, [section(text)]


def incident_card(
    *, title: str, incident_ref: str, status: str, fields: Sequence[tuple[str, str]], link: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """The incident card in the incident channel, updated in place on every change. A section holds at most
    10 fields (Block Kit's limit), so a card with more (service, owner, timings, urgency, priority,
    assignees, ...) continues in a second section rather than dropping the last ones."""
    emoji = {
        "triggered": ":red_circle:",
        "acknowledged": ":large_orange_circle:",
        "resolved": ":large_green_circle:",
    }
    text = f"{emoji.get(status, '')} Incident {incident_ref} {status}: {escape_mrkdwn(title)}".strip()
    blocks: list[dict[str, Any]] = [
        header(f"Incident {incident_ref}: {title}"),
        section(f"{emoji.get(status, '')} *{status.capitalize()}*"),
    ]
    shown = [mrkdwn(f"*{name}*\n{value}") for name, value in fields]
    blocks += [{"type": "section", "fields": shown[i : i + 10]} for i in range(0, len(shown), 10)]
    if link:
        blocks.append(context(f"<{link}|Open in PagerDuty>"))
    return text, blocks


def feedback_message(
    *, title: str, body: str, fallback: str, footer: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
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
) -> tuple[str, list[dict[str, Any]]]:
    """A reminder to one person or channel, with a snooze button (and a way to write the post-mortem)."""
    buttons = []
    if open_incident_id is not None:
        buttons.append(
            button("Write the post-mortem", Action.OPEN_POSTMORTEM, str(open_incident_id), "primary")
        )
    buttons.append(button("Snooze 1 day", Action.SNOOZE_NUDGE, snooze_value))
    return fallback, [section(body), {"type": "actions", "elements": buttons}]
