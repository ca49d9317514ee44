"""Reading the Markdown the bot writes as people's tools do: markdown-it-py, CommonMark plus GFM tables."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

PARSER = MarkdownIt("commonmark").enable("table")
# Slack markup the bot could leak: a mention, a channel link, a broadcast.
SLACK_MARKUP = re.compile(r"<[@#!][A-Za-z0-9^|@ _-]+>")


def tokens(markdown: str) -> list[Token]:
    return PARSER.parse(markdown)


def inline_text(token: Token) -> str:
    """What a reader sees of one inline token (escapes read back)."""
    return "".join(
        "\n" if child.type in ("softbreak", "hardbreak") else child.content
        for child in token.children or []
        if child.type in ("text", "code_inline", "softbreak", "hardbreak")
    )


def outline(markdown: str) -> list[tuple[int, str]]:
    """The headings: (level, text as read)."""
    found = tokens(markdown)
    return [
        (int(token.tag[1:]), inline_text(found[index + 1]))
        for index, token in enumerate(found)
        if token.type == "heading_open"
    ]


def plain_text(markdown: str) -> str:
    """What a reader sees: the text of every inline token (escapes read back), lines joined."""
    parts: list[str] = []
    for token in tokens(markdown):
        parts.append(inline_text(token))
        if token.type in ("paragraph_close", "heading_close", "th_close", "td_close"):
            parts.append("\n")
    return "".join(parts)


def raw_html(markdown: str) -> list[str]:
    """Every piece of raw HTML a renderer would pass through (blocks and inline)."""
    found: list[str] = []
    for token in tokens(markdown):
        if token.type == "html_block":
            found.append(token.content)
        found += [child.content for child in token.children or [] if child.type == "html_inline"]
    return found
