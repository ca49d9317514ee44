"""What every flow runs with: the settings, the database, the ways out to Slack and the participant cache.

The running process (bot/runtime/) builds one Runtime and hands it to listeners through Bolt's keyword
injection (`runtime` is a context key), to the webhook processor and to the scheduled jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlmodel import Session

from bot.core.config import Settings
from bot.core.db import read_scope, session_scope
from bot.domain.access import ParticipantCache
from bot.slack.channels import ChannelDirectory
from bot.slack.people import PeopleDirectory


class Outbox(Protocol):
    """The outbox worker, as flows see it: something to wake once new rows are committed."""

    def wake(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    client: WebClient
    channels: ChannelDirectory
    outbox: Outbox
    # Names of people for the documents (users.info, cached).
    people: PeopleDirectory
    # Who is in which incident channel, for the authorization checks (bot/domain/access.py).
    participants: ParticipantCache = field(default_factory=ParticipantCache)

    @contextmanager
    def change(self) -> Iterator[Session]:
        """One transaction for one change; the outbox is woken after it commits (never before, or the
        worker could look before the rows exist)."""
        with session_scope(self.engine) as session:
            yield session
        self.outbox.wake()

    def read(self) -> AbstractContextManager[Session]:
        """A read-only transaction: it does not queue behind writers (bot/core/db.py)."""
        return read_scope(self.engine)
