"""Who may touch a post-mortem, and a short-lived cache of who is in which incident channel. No Slack here:
the caller looks the members up (conversations.members) and passes them in.

The rule: the incident's participants (the members of its channel) and POSTMORTEM_ADMINS may open, edit,
save, publish and restore a post-mortem and close its action items; an action item's owner may close it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

from bot.core.errors import UserError

PARTICIPANTS_TTL_SECONDS = 60.0


class NotAllowed(UserError):
    """Someone who is neither a participant nor an admin tried to change a post-mortem."""


def may_edit(
    *, user_id: str, participants: Collection[str], admins: Collection[str], owner_id: str | None = None
) -> bool:
    """The rule: a member of the incident channel, a POSTMORTEM_ADMINS user, or (for an action item) its
    owner."""
    return user_id in admins or user_id in participants or (owner_id is not None and user_id == owner_id)


def refusal(*, channel_id: str | None, what: str) -> NotAllowed:
    where = f"<#{channel_id}>" if channel_id else "the incident's channel"
    return NotAllowed(
        f":no_entry: Only people in {where} (or a post-mortem admin) can {what}. "
        "Ask someone in the channel to add you, then try again."
    )


class ParticipantCache:
    """Channel id -> its members, kept `ttl` seconds so a busy modal does not call Slack on every click.

    Thread-safe (waitress serves requests on many threads). Only a *yes* is ever answered from the cache:
    callers ask again with `fresh=True` before refusing, so someone who just joined is never turned away,
    and `forget` (on member_joined/left_channel) drops a channel whose membership changed.
    """

    def __init__(self, ttl: float = PARTICIPANTS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, frozenset[str]]] = {}

    def members(
        self, channel_id: str, load: Callable[[str], Collection[str]], *, fresh: bool = False
    ) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(channel_id)
        if entry is not None and not fresh and now - entry[0] < self._ttl:
            return entry[1]
        # Loaded outside the lock: one slow Slack call must not hold up other channels' lookups.
        members = frozenset(load(channel_id))
        with self._lock:
            self._entries[channel_id] = (self._clock(), members)
        return members

    def forget(self, channel_id: str) -> None:
        with self._lock:
            self._entries.pop(channel_id, None)

    def members_seen_by(
        self, channel_id: str, user_id: str, load: Callable[[str], Collection[str]]
    ) -> frozenset[str]:
        """The members, from the cache when `user_id` is among them, else freshly loaded: a refusal is
        always based on the current member list."""
        members = self.members(channel_id, load)
        return members if user_id in members else self.members(channel_id, load, fresh=True)
