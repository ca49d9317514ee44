"""A plain-text rendering of a channel, for the demo's output and for readable test failures."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

_MENTION = re.compile(r"<([@#!])([^|>]+)(?:\|([^>]+))?>")


def _plain(text: str, names: Mapping[str, str]) -> str:
    """Slack markup to plain text: <@U1> -> @alice, <#C1|inc> -> #inc, <url|label> -> label."""

    def replace(match: re.Match[str]) -> str:
        sigil, target, label = match.groups()
        if sigil == "@":
            return "@" + names.get(target, label or target)
        if sigil == "#":
            return "#" + (label or names.get(target, target))
        return "@" + (label or target)

    text = _MENTION.sub(replace, text)
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2", text)
    text = re.sub(r"<([^>]+)>", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _block_lines(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    text = (block.get("text") or {}).get("text") if isinstance(block.get("text"), dict) else None
    if kind == "header":
        return [f"== {text} =="]
    if kind == "divider":
        return ["----"]
    if kind == "markdown":
        return str(block.get("text") or "").splitlines()
    lines: list[str] = []
    if kind == "section":
        if text:
            lines.extend(text.splitlines())
        # A field is usually "*Label*\nvalue": one line per field pair reads best.
        fields = [" ".join(f.get("text", "").split("\n")) for f in block.get("fields") or []]
        lines.extend(" | ".join(fields[i : i + 2]) for i in range(0, len(fields), 2))
        accessory = block.get("accessory") or {}
        if accessory.get("type") == "button":
            lines.append(f"[{accessory.get('text', {}).get('text')}]")
    elif kind == "context":
        parts = [
            e.get("text", "")
            for e in block.get("elements") or []
            if e.get("type") in ("mrkdwn", "plain_text")
        ]
        if parts:
            lines.append("  ".join(parts))
    elif kind == "actions":
        labels = [
            f"[{e.get('text', {}).get('text')}]"
            for e in block.get("elements") or []
            if e.get("type") == "button"
        ]
        if labels:
            lines.append(" ".join(labels))
    elif kind == "image":
        lines.append(f"[image: {block.get('alt_text')}]")
    return lines


def message_lines(message: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    """The body of one message: block text when it has blocks (what people see), else its text."""
    blocks = [b for b in message.get("blocks") or [] if b.get("type") != "rich_text"]
    lines = [line for block in blocks for line in _block_lines(block)] if blocks else []
    if not lines:
        lines = str(message.get("text") or "").splitlines()
    for f in message.get("files") or []:
        lines.append(f'[file: {f.get("name")} "{f.get("title")}"]')
    return [part for line in lines for part in _plain(line, names).split("\n")] or [""]


def render_transcript(
    channel_name: str,
    messages: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    tz: tzinfo | str | None = None,
) -> str:
    """Render `messages` (every message of a channel, ts order) as indented plain text."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else (tz or UTC)
    top = [m for m in messages if m.get("thread_ts") in (None, m["ts"])]
    replies: dict[str, list[Mapping[str, Any]]] = {}
    for m in messages:
        if m.get("thread_ts") not in (None, m["ts"]):
            replies.setdefault(m["thread_ts"], []).append(m)
    out = [f"#{channel_name}"]

    def emit(message: Mapping[str, Any], indent: str) -> None:
        when = datetime.fromtimestamp(float(message["ts"]), zone).strftime("%H:%M:%S")
        author = names.get(message.get("user") or "", message.get("user") or "?")
        edited = " (edited)" if message.get("edited") else ""
        reactions = "  " + " ".join(f":{r['name']}: {r['count']}" for r in message.get("reactions") or [])
        body = message_lines(message, names)
        out.append(f"{indent}{when} {author}{edited}: {body[0]}")
        pad = indent + " " * (len(when) + len(author) + len(edited) + 3)
        out.extend(f"{pad}{line}" for line in body[1:])
        if message.get("reactions"):
            out.append(pad + reactions.strip())

    for message in top:
        emit(message, "  ")
        for reply in replies.get(message["ts"], []):
            emit(reply, "      | ")
    if len(out) == 1:
        out.append("  (no messages)")
    return "\n".join(out)
