"""The outbox's pacing: each row's Slack call is spaced by Slack's published limits
(bot/slack/rate_limits.py), per method and per channel, so a storm goes out at close to those limits
instead of by repeated 429s.

A row whose limits are not free yet goes back to the queue, due when they are (not an attempt); a 429
holds its limits for its Retry-After. Each replica paces its own calls: two replicas share Slack's limits,
and the 429s (honoured the same way) settle the difference.
"""

from __future__ import annotations

from datetime import datetime

from bot.core.models import OutboxMessage
from bot.slack.channels import is_channel_id
from bot.slack.outbox import OutboxKind
from bot.slack.rate_limits import Key, Limit, RateGate, limits_for

Limits = list[tuple[Key, Limit]]


def row_limits(row: OutboxMessage, *, updating: bool) -> Limits:
    """The limits the Slack call that delivers `row` counts against (`updating`: its message exists, so
    it is a chat.update)."""
    if row.kind == OutboxKind.CHANNEL:
        creates = bool(row.payload.get("create", True)) and not is_channel_id(row.channel)
        return limits_for("conversations.create" if creates else "conversations.join")
    if row.kind == OutboxKind.EPHEMERAL:
        return limits_for("chat.postEphemeral")
    if row.kind == OutboxKind.INVITE:
        # Without PAGERDUTY_USER_MAP's Slack id, the invitation first looks the person up by e-mail.
        lookup = [] if row.payload.get("slack_user") else limits_for("users.lookupByEmail")
        return lookup + limits_for("conversations.invite")
    if row.kind == OutboxKind.UPLOAD:
        return limits_for("files.getUploadURLExternal") + limits_for("files.completeUploadExternal")
    return limits_for("chat.update") if updating else limits_for("chat.postMessage", row.channel)


class Pacer:
    def __init__(self) -> None:
        self._gate = RateGate()

    def wait(self, limits: Limits, now: datetime) -> float:
        """Seconds until a call counting against `limits` may go."""
        return self._gate.wait(limits, now.timestamp())

    def take(self, limits: Limits, now: datetime) -> None:
        self._gate.take(limits, now.timestamp())

    def hold(self, limits: Limits, until: datetime) -> None:
        self._gate.hold(limits, until.timestamp())
