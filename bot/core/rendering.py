"""Jinja2 rendering for Slack text and Markdown documents, and the text rules of both formats.

Slack's mrkdwn needs only `&`, `<` and `>` escaped; HTML autoescape would also encode quotes and
show `&#39;` to readers, so templates use the explicit `slack` filter instead, and `StrictUndefined`
turns a typo in a template into an error rather than a blank. Text Slack sends us (a pinned message) is
mrkdwn already: it is escaped by Slack, never again by us (`slack_message_mrkdwn`).

In Markdown, user text can never make structure (a heading, list, quote, table, code block or HTML):
`markdown_text` escapes what CommonMark would read as markup and keeps the text readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined


def escape_mrkdwn(text: str, limit: int | None = None, suffix: str = "…") -> str:
    """Escape user text for Slack: `<!channel>` or `<@U123>` become inert text, pinging nobody. With
    `limit`, cut to that many characters after escaping (`truncate_mrkdwn`), so it fits once escaped."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped if limit is None else truncate_mrkdwn(escaped, limit, suffix)


# Slack markup (`<@U1>`, `<#C1|ops>`, `<!here>`, `<https://x|label>`) and the three entities Slack escapes.
_SLACK_TOKEN = re.compile(r"<([^<>\n]*)>")
_ATOM = re.compile(r"<[^<>\n]*>|&(?:amp|lt|gt);|.", re.DOTALL)
# Broadcasts and group mentions: `<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^S1|@oncall>`.
_BROADCAST = re.compile(r"<!(here|channel|everyone|subteam\^[^|>]*)(?:\|([^>]*))?>")


def unescape_mrkdwn(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_message_mrkdwn(text: str) -> str:
    """A message as Slack sent it, to post again: already escaped (kept as is, so a mention stays a
    mention and `&lt;b&gt;` stays `<b>` to the reader), except that broadcasts become plain text: quoting
    a message in another channel must not notify `@channel` there."""
    return _BROADCAST.sub(lambda m: m.group(2) or "@" + m.group(1).split("^")[0], text)


def truncate_mrkdwn(text: str, limit: int, suffix: str = "…") -> str:
    """Shorten mrkdwn to `limit` characters, cutting only between characters a reader sees: never inside
    an entity (`&lt;`) or a mention/link (`<@U1>`), which are kept whole or dropped whole."""
    if len(text) <= limit:
        return text
    budget, kept = limit - len(suffix), 0
    for atom in _ATOM.finditer(text):
        if atom.end() > budget:
            break
        kept = atom.end()
    return text[:kept] + suffix


# Markdown: characters that are markup anywhere on a line (emphasis, code, links and images, HTML, tables,
# strikethrough, entities), the `#`s that would close a heading, and what starts a block at a line's start.
_MD_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")
_MD_CLOSING_HASHES = re.compile(r"(?<=\s)#(#*)$")
_MD_ORDERED = re.compile(r"^(\d{1,9})([.)])")


def _markdown_line(line: str) -> str:
    """One line of user text as Markdown: leading spaces would make an indented code block, `#` `-` `+`
    `>` `=` or `12.` a heading, list, quote or setext underline; trailing spaces a hard break."""
    line = _MD_CLOSING_HASHES.sub(r"\\#\1", _MD_INLINE.sub(r"\\\1", line.strip()))
    if line[:1] in ("#", "-", "+", ">", "="):
        return "\\" + line
    return _MD_ORDERED.sub(r"\1\\\2", line)


def markdown_inline(text: str) -> str:
    """User text inside one line of Markdown (a heading, a list item, a table cell): on one line, inert."""
    return _markdown_line(" ".join(text.split()))


def markdown_text(text: str) -> str:
    """User text as Markdown paragraphs that read as typed: each line stays a line (a backslash hard
    break), a blank line separates paragraphs, and nothing in it becomes structure."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(
        "\\\n".join(_markdown_line(line) for line in paragraph.splitlines() if line.strip())
        for paragraph in paragraphs
        if paragraph.strip()
    )


def slack_markdown(text: str, person: Callable[[str], str], *, inline: bool = False) -> str:
    """Slack text as Markdown a person reads: `<@U1>` becomes `person("U1")` (the caller's Markdown for
    them), `<#C1|ops>` `#ops`, `<https://x|docs>` `docs (https://x)`, `<!here>` `@here`; the rest is
    user text (`markdown_text`), Slack's `&lt;` `&gt;` `&amp;` read back first. `inline`: on one line
    (`markdown_inline`)."""
    people: dict[str, str] = {}

    def readable(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            # A placeholder of private-use characters (never markup, never typed), swapped for the
            # person's Markdown once the text around it is escaped.
            key = f"\ue000{len(people)}\ue001"
            people[key] = person(target[1:])
            return key
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return f"{label} ({target})" if label and label != target else target

    plain = _SLACK_TOKEN.sub(readable, text)
    plain = unescape_mrkdwn(plain)
    markdown = markdown_inline(plain) if inline else markdown_text(plain)
    for key, value in people.items():
        markdown = markdown.replace(key, value)
    return markdown


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
    env.filters["md"] = markdown_inline
    env.filters["cut"] = truncate_mrkdwn
    env.filters["duration"] = format_duration
    env.filters["plural"] = plural
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
