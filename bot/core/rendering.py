"""Jinja2 rendering for Slack text and Markdown documents.

Slack's mrkdwn needs only `&`, `<` and `>` escaped; HTML autoescape would also encode quotes and
show `&#39;` to readers, so templates use the explicit `slack` filter instead, and `StrictUndefined`
turns a typo in a template into an error rather than a blank.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined


def escape_mrkdwn(text: str) -> str:
    """Escape user text for Slack: `<!channel>` or `<@U123>` become inert text, pinging nobody."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_duration(seconds: int | None) -> str:
    """`None` -> "—", 3725 -> "1 h 2 min"; durations under a minute keep their seconds."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 min"


def plural(count: int, noun: str) -> str:
    """1 -> "1 incident", 3 -> "3 incidents"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_instant(value: datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    return "—" if value is None else value.astimezone(tz).strftime(fmt)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bot.core", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["slack"] = escape_mrkdwn
    env.filters["duration"] = format_duration
    env.filters["plural"] = plural
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
