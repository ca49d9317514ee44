"""The outbox's enqueue side: what the bot owes Slack, written as durable rows in the caller's transaction.

A row is delivered later by the outbox worker (bot/runtime/outbox_worker.py, which documents the delivery
guarantees). `key` makes enqueueing idempotent: the same event enqueued twice is one message. A "post" row
with a `message_key` posts the first time and updates that same Slack message (`chat.update`) afterwards,
so a card or a summary is never posted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bot.core.db import insert_ignoring_duplicates, rows_changed
from bot.core.models import Attachment, OutboxMessage, OutboxStatus


class OutboxKind(StrEnum):
    POST = "post"
    EPHEMERAL = "ephemeral"
    UPLOAD = "upload"
    # Open a channel (conversations.create, or find and join an existing one) and hand its id to the
    # worker's `on_channel` hook; `channel` is the name (or id) of the channel.
    CHANNEL = "channel"
    # Invite a PagerDuty user into the incident channel `channel` (bot/runtime/invitations.py).
    INVITE = "invite"


class Priority(IntEnum):
    """The order the worker takes due rows in: urgent work before routine work (then oldest first)."""

    URGENT = 0  # a new high-urgency incident's channel and card
    NORMAL = 1
    ROUTINE = 2  # the digest, reminders, nudges, wins


# The payload field holding when an undelivered message stops being worth sending (ISO 8601).
STALE_AT = "stale_at"

# (session, row payload, channel) -> None; runs in the transaction that marks the row sent, so the
# channel's id is stored exactly when the row counts as done.
ChannelHook = Callable[[Session, dict[str, Any], dict[str, Any]], None]


def enqueue(
    session: Session,
    *,
    key: str,
    channel: str,
    at: datetime,
    kind: OutboxKind = OutboxKind.POST,
    message_key: str | None = None,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    thread_of: str | None = None,
    user: str | None = None,
    stale_at: datetime | None = None,
    priority: Priority = Priority.NORMAL,
    instead: dict[str, str] | None = None,
) -> bool:
    """Owe Slack a message. `thread_of` is the message_key of the message to reply under; `user` is the
    recipient of an ephemeral message; a message still undelivered at `stale_at` (Slack was down) is
    dropped with a log line instead of sent late; `instead` ({"channel", "thread_of"}) is where it goes
    when Slack refuses `channel` for good (archived, deleted, the bot removed: bot/runtime/rerouting.py).
    Returns False when `key` was enqueued before (nothing changes)."""
    payload: dict[str, Any] = {"text": text}
    if stale_at is not None:
        payload[STALE_AT] = stale_at.isoformat()
    if blocks is not None:
        payload["blocks"] = blocks
    if thread_of:
        payload["thread_of"] = thread_of
    if user:
        payload["user"] = user
    if instead:
        payload["instead"] = instead
    return insert_ignoring_duplicates(
        session,
        OutboxMessage,
        {
            "key": key,
            "kind": kind,
            "channel": channel,
            "message_key": message_key,
            "payload": payload,
            "priority": priority,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        },
    )


def enqueue_upload(
    session: Session,
    *,
    key: str,
    channel: str,
    at: datetime,
    filename: str,
    content: bytes,
    title: str,
    comment: str | None = None,
    thread_of: str | None = None,
    priority: Priority = Priority.NORMAL,
    instead: dict[str, str] | None = None,
) -> bool:
    """Owe Slack a file upload (a Markdown document, a chart) into `channel`, optionally in a thread;
    `instead` as for `enqueue`."""
    if session.exec(select(OutboxMessage.id).where(OutboxMessage.key == key)).first() is not None:
        return False
    attachment = Attachment(filename=filename, content=content, created_at=at)
    session.add(attachment)
    session.flush()
    payload: dict[str, Any] = {"attachment_id": attachment.id, "filename": filename, "title": title}
    if comment:
        payload["comment"] = comment
    if thread_of:
        payload["thread_of"] = thread_of
    if instead:
        payload["instead"] = instead
    return insert_ignoring_duplicates(
        session,
        OutboxMessage,
        {
            "key": key,
            "kind": OutboxKind.UPLOAD,
            "channel": channel,
            "payload": payload,
            "priority": priority,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        },
    )


def enqueue_channel(
    session: Session,
    *,
    key: str,
    name: str,
    create: bool,
    at: datetime,
    context: dict[str, Any],
    priority: Priority = Priority.NORMAL,
) -> bool:
    """Owe Slack a channel: created as `name` when `create` (reusing one of that name that exists),
    otherwise the existing channel `name` (a name or an id) is joined. `context` reaches the hook."""
    return insert_ignoring_duplicates(
        session,
        OutboxMessage,
        {
            "key": key,
            "kind": OutboxKind.CHANNEL,
            "channel": name,
            "payload": {**context, "create": create},
            "priority": priority,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        },
    )


def enqueue_invite(
    session: Session, *, key: str, channel: str, at: datetime, payload: dict[str, Any]
) -> bool:
    """Owe an invitation into `channel` (an id): durable, retried like any Slack call."""
    return insert_ignoring_duplicates(
        session,
        OutboxMessage,
        {
            "key": key,
            "kind": OutboxKind.INVITE,
            "channel": channel,
            "payload": payload,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        },
    )


def depth(session: Session) -> dict[str, int]:
    """Rows by status: pending and parked are what /healthz and /metrics report."""
    rows = session.exec(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    counts = {status.value: 0 for status in OutboxStatus}
    counts.update({status: count for status, count in rows})
    return counts


def oldest_pending(session: Session) -> datetime | None:
    """When the oldest message still owed to Slack was enqueued (None: nothing is owed)."""
    statement = select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status == OutboxStatus.PENDING)
    return session.exec(statement).one()


def stale(row: OutboxMessage, now: datetime) -> bool:
    """True when `row` waited past its `stale_at` (a reminder that would now arrive too late to help)."""
    stale_at = row.payload.get(STALE_AT)
    return stale_at is not None and datetime.fromisoformat(stale_at) <= now


def parked(session: Session) -> list[OutboxMessage]:
    """The parked rows, oldest first: what `postmortem-bot outbox list` shows."""
    statement = select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.PARKED)
    return list(session.exec(statement.order_by(col(OutboxMessage.id))))


def replay(session: Session, ids: list[int] | None, at: datetime) -> int:
    """Parked rows back to pending, due now, attempts from zero (`outbox retry`); `ids` None: all.
    A replayed channel row runs its hook again when it succeeds, so the card and prompt follow."""
    return _change_parked(
        session,
        ids,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=at,
        claimed_until=None,
        last_error=None,
    )


def drop(session: Session, ids: list[int] | None) -> int:
    """Parked rows given up for good (`outbox drop`): kept, with their error, as dropped."""
    return _change_parked(session, ids, status=OutboxStatus.DROPPED)


def _change_parked(session: Session, ids: list[int] | None, **values: Any) -> int:
    statement = update(OutboxMessage).where(col(OutboxMessage.status) == OutboxStatus.PARKED)
    if ids is not None:
        statement = statement.where(col(OutboxMessage.id).in_(ids))
    return rows_changed(session, statement.values(**values))
