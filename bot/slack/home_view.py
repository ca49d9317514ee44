"""The App Home tab's view: a person's open action items, the post-mortems they owe and the team's KPIs.
bot/loop/home_content.py gathers what it shows; handlers/home.py publishes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.rendering import escape_mrkdwn, format_instant
from bot.domain.action_items import OpenItem
from bot.slack.blocks import (
    DIVIDER,
    Action,
    Block,
    Callback,
    button,
    context,
    header,
    row_block_id,
    section,
)
from bot.slack.messages import issue_link


@dataclass(frozen=True)
class OwedPostmortem:
    incident_id: int
    incident_ref: str
    title: str
    channel_id: str | None
    resolved_at: datetime | None
    status: str  # "draft", "not started", or "published, needs a review" (its incident reopened)


@dataclass(frozen=True)
class HomeContent:
    action_items: list[OpenItem]
    owed: list[OwedPostmortem]
    kpis: list[tuple[str, str]]
    since: datetime
    until: datetime


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
        title = escape_mrkdwn(item.incident_title, 200)
        where = f"{item.incident_ref} {title}{channel(item.channel_id)}{due}{issue_link(item.issue)}"
        text = f"{escape_mrkdwn(item.text, 2500)}\n_{where}_"
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
        title = escape_mrkdwn(owed.title, 300)
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
