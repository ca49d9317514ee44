"""Posts Slack refuses for good because of where they were going: the channel was archived (`is_archived`),
deleted or hidden (`channel_not_found`), or the bot is no longer in it (`not_in_channel`). A row that says
where it should go `instead` (bot/slack/notices.py `elsewhere`) is moved there and sent again at once,
instead of being parked where no one reads it; what Slack said of the channel is remembered, so later
posts go to the right place directly. The outbox worker asks here before joining a channel: one the bot
was removed from is never joined again by itself.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine, update
from sqlmodel import col

from bot.core.db import read_scope, session_scope
from bot.core.models import OutboxMessage
from bot.domain.channels import channel_state, record_channel

log = logging.getLogger(__name__)

REROUTED_ERRORS = {"is_archived", "channel_not_found", "not_in_channel"}


def reroute(engine: Engine, row: OutboxMessage, error: str, *, at: datetime) -> bool:
    """Move `row` to where its payload says it goes `instead`, due now. False: it has nowhere else to go."""
    instead = row.payload.get("instead")
    if error not in REROUTED_ERRORS or not instead:
        return False
    payload = {k: v for k, v in row.payload.items() if k not in ("instead", "thread_of")}
    if instead.get("thread_of"):
        payload["thread_of"] = instead["thread_of"]
    with session_scope(engine) as session:
        if error == "is_archived":
            record_channel(session, row.channel, at=at, is_archived=True)
        session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row.id)
            .values(
                channel=instead["channel"],
                payload=payload,
                next_attempt_at=at,
                claimed_until=None,
                last_error=f"rerouted from {row.channel}: {error}",
            )
        )
    log.warning("outbox row %s (%s): %s in %s, sent to %s", row.id, row.key, error, row.channel, instead)
    return True


def may_join(engine: Engine, channel_id: str) -> bool:
    """False for a channel a person removed the bot from: only an invitation brings it back."""
    with read_scope(engine) as session:
        state = channel_state(session, channel_id)
    return state is None or not state.bot_removed
