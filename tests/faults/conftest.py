"""Fault fixtures: a Slack sandbox of their own (with #postmortems and #wins) for bots run as processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.devtools.sandbox import DEMO_HUMANS, SlackSandbox
from bot.devtools.stack import BOT_TOKEN, SIGNING_SECRET


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN) as sb:
        for name in ("postmortems", "wins"):
            sb.create_channel(name, members=[u.id for u in DEMO_HUMANS])
        yield sb
