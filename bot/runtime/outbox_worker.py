"""The outbox worker: the one place that posts to Slack outside an interactive request.

Services enqueue durable rows inside their own transaction (so a message exists exactly when the state
change that caused it does); a worker delivers them. `key` makes enqueueing idempotent: the same event
enqueued twice is one message. A "post" row with a `message_key` posts the first time and updates
that same Slack message (`chat.update`) afterwards, so a card or a summary is never posted twice.

Slack rate-limits about one message per second per channel and answers 429 with `Retry-After`
(docs/architecture.md, "Slack"): the worker reschedules the row for then, without blocking any listener.

Delivery guarantee (what the fault tests in tests/faults/ prove):

- Nothing lost: a row stays pending until Slack confirmed it; failures are retried with back-off, and
  after MAX_ATTEMPTS (or a refusal that retrying cannot fix) the row is *parked*: logged at ERROR, kept
  with its `last_error`, and counted by `/healthz` (which then says "degraded").
- Never sent by two workers: a worker claims due rows for a short lease (`claimed_until`) inside a
  `SELECT ... FOR UPDATE SKIP LOCKED` transaction on PostgreSQL (`BEGIN IMMEDIATE` on SQLite), so
  replicas never pick the same row; the Slack call happens after that transaction, outside any lock.
- Never posted twice after a crash: every post carries Slack message metadata with the row's key
  (`event_type` OUTBOX_EVENT_TYPE, `event_payload.key`). A row that was tried before (attempts > 0, or
  a claim that expired because its worker died between sending and recording) is first looked up in
  the channel's recent history (or the thread's replies); if Slack already has it, the worker records
  it instead of posting again. Uploads are found the same way by their file name. Updates
  (`chat.update`) are idempotent by nature. Ephemeral messages cannot be looked up: they are
  at-least-once.
- In order per logical message: a row is not claimed while an earlier row for the same `message_key`
  is pending, so a card's "resolved" update can never be posted as a second card ahead of its first post.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy import Engine, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from bot.core.clock import utcnow
from bot.core.db import read_scope, session_scope
from bot.core.models import Attachment, OutboxMessage, OutboxStatus, SlackMessage
from bot.runtime.workers import PollingWorker
from bot.slack.channels import ChannelDirectory, ChannelNotFound, is_channel_id, is_user_id
from bot.slack.outbox import ChannelHook, OutboxKind

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_ATTEMPTS = 8
CLAIM_SECONDS = 60
BATCH = 20
MAX_BACKOFF_SECONDS = 300.0
# Slack message metadata that tags every post with its outbox key (the crash-recovery lookup reads it).
OUTBOX_EVENT_TYPE = "postmortem_bot_outbox"
# How far back to look for a message a crashed attempt may have posted (one page of history).
RECOVERY_LOOKBACK = 200
# Slack errors that retrying cannot fix: the row is parked at once with the error, for a person to see.
PERMANENT_ERRORS = {
    "channel_not_found",
    "invalid_blocks",
    "invalid_arguments",
    "msg_too_long",
    "no_text",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "missing_scope",
    "message_not_found",
    "cant_update_message",
    "user_not_found",
    "missing_text_fallback",
    "invalid_metadata_format",
    "invalid_name",
    "invalid_name_specials",
    "invalid_name_maxlength",
    "invalid_name_required",
    "restricted_action",
}


class _Retry(Exception):
    def __init__(self, reason: str, after: float | None = None, counts: bool = True) -> None:
        super().__init__(reason)
        self.after = after
        self.counts = counts


class OutboxWorker(PollingWorker):
    """Delivers due outbox rows. Several workers (threads or replicas) may run on one database: a row is
    claimed for a short lease by one of them before it is sent."""

    def __init__(
        self,
        *,
        engine: Engine,
        client: WebClient,
        channels: ChannelDirectory,
        poll_interval: float = 0.25,
        on_channel: ChannelHook | None = None,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        claim_seconds: float = CLAIM_SECONDS,
    ) -> None:
        self.worker_id = f"outbox-{uuid.uuid4().hex[:8]}"
        super().__init__(name=self.worker_id, poll_interval=poll_interval)
        self._engine = engine
        self._max_backoff = max_backoff
        self._claim_seconds = claim_seconds
        self._on_channel = on_channel
        self._client = client
        self._channels = channels

    def run_once(self, now: datetime | None = None) -> int:
        """Claim and deliver the rows that are due; returns how many were attempted."""
        claimed = self._claim(now or utcnow())
        for row, retried in claimed:
            self._deliver(row, retried=retried)
        return len(claimed)

    def _claim(self, now: datetime) -> list[tuple[OutboxMessage, bool]]:
        """Lease the due rows to this worker. The lease is written in the same transaction that locked
        the rows (SKIP LOCKED: a concurrent worker skips them instead of waiting), so two workers never
        hold the same row. Each row comes with `retried`: True when it was tried before, which is when the
        delivery first checks whether Slack already has the message."""
        earlier = aliased(OutboxMessage)
        earlier_pending = (
            select(earlier.id)
            .where(
                earlier.message_key == OutboxMessage.message_key,
                col(earlier.id) < col(OutboxMessage.id),
                earlier.status == OutboxStatus.PENDING,
            )
            .exists()
        )
        due = (
            select(OutboxMessage.id, OutboxMessage.claimed_until)
            .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
            .where(or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now))
            # One logical message is sent in order: its update waits for its first post.
            .where(or_(col(OutboxMessage.message_key).is_(None), ~earlier_pending))
            .order_by(col(OutboxMessage.id))
        )
        # Look before locking: an idle poll (4 a second) is then a read beside the writers, not a turn in
        # SQLite's writer queue; the claim below checks again under the lock.
        with read_scope(self._engine) as session:
            if session.execute(due.limit(1)).first() is None:
                return []
        with session_scope(self._engine) as session:
            found = list(
                session.execute(due.limit(BATCH).with_for_update(skip_locked=True, of=OutboxMessage))
            )
            if not found:
                return []
            ids = [row_id for row_id, _ in found]
            # A claim that was never released means its worker died mid-delivery.
            abandoned = {row_id for row_id, claimed_until in found if claimed_until is not None}
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids))
                .values(claimed_by=self.worker_id, claimed_until=now + timedelta(seconds=self._claim_seconds))
            )
            rows = list(
                session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.id).in_(ids))
                    .order_by(col(OutboxMessage.id))
                )
            )
        return [(row, row.attempts > 0 or row.id in abandoned) for row in rows]

    def _deliver(self, row: OutboxMessage, *, retried: bool) -> None:
        try:
            self._send(row, retried=retried)
        except _Retry as retry:
            self._reschedule(row, retry)
        except ChannelNotFound as exc:
            self._park(row, str(exc))
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown_error")
            status = exc.response.status_code
            if status == 429:
                self._reschedule(
                    row,
                    _Retry(
                        "ratelimited", after=float(exc.response.headers.get("Retry-After", 1)), counts=False
                    ),
                )
            elif status >= 500 or error not in PERMANENT_ERRORS:
                self._reschedule(row, _Retry(f"{status} {error}"))
            else:
                self._park(row, f"Slack refused {row.kind} to {row.channel}: {error}")
        except (SlackRequestError, OSError) as exc:  # time-outs, refused connections
            self._reschedule(row, _Retry(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:
            # Anything else (a malformed payload, a database hiccup while recording) still counts as an
            # attempt, so the row is parked after MAX_ATTEMPTS and /healthz says so, instead of being
            # re-claimed forever while the rest of its batch waits.
            log.exception("outbox row %s (%s) failed unexpectedly", row.id, row.key)
            self._reschedule(row, _Retry(f"{type(exc).__name__}: {exc}"))

    def _send(self, row: OutboxMessage, *, retried: bool) -> None:
        payload = row.payload
        if row.kind == OutboxKind.CHANNEL:
            opened = self._open_channel(row.channel, create=bool(payload.get("create", True)))
            hook = self._on_channel
            then = (lambda session: hook(session, payload, opened)) if hook else None
            self._mark_sent(row, None, then=then)
            return
        channel = self._channels.resolve(row.channel)
        thread_ts = self._thread_ts(payload.get("thread_of"))
        if row.kind == OutboxKind.EPHEMERAL:
            self._client.chat_postEphemeral(
                channel=channel,
                user=payload["user"],
                text=payload["text"],
                blocks=payload.get("blocks"),
                thread_ts=thread_ts,
            )
            self._mark_sent(row, None)
        elif row.kind == OutboxKind.UPLOAD:
            if retried and self._already_delivered(row, channel, thread_ts):
                return
            with read_scope(self._engine) as session:
                attachment = session.get(Attachment, payload["attachment_id"])
                content = attachment.content if attachment else b""
            self._with_join(
                channel,
                lambda: self._client.files_upload_v2(
                    channel=channel,
                    content=content,
                    filename=payload["filename"],
                    title=payload["title"],
                    initial_comment=payload.get("comment"),
                    thread_ts=thread_ts,
                ),
            )
            self._mark_sent(row, None)
        else:
            existing = self._message_location(row.message_key)
            if existing is not None:
                self._client.chat_update(
                    channel=existing.channel,
                    ts=existing.ts,
                    text=payload["text"],
                    blocks=payload.get("blocks"),
                )
                self._mark_sent(row, None)
            elif not (retried and self._already_delivered(row, channel, thread_ts)):
                response = self._with_join(
                    channel,
                    lambda: self._client.chat_postMessage(
                        channel=channel,
                        text=payload["text"],
                        blocks=payload.get("blocks"),
                        thread_ts=thread_ts,
                        unfurl_links=False,
                        unfurl_media=False,
                        metadata={"event_type": OUTBOX_EVENT_TYPE, "event_payload": {"key": row.key}},
                    ),
                )
                self._mark_sent(row, (response["channel"], response["ts"]))

    def _already_delivered(self, row: OutboxMessage, channel: str, thread_ts: str | None) -> bool:
        """For a row tried before: find the message (or file) an earlier attempt may have posted before
        it could record it, and record that instead of posting a second copy. True when found."""
        found = self._find_in_slack(row, channel, thread_ts)
        if found is None:
            return False
        log.warning(
            "outbox row %s (%s) was already in Slack at %s; recorded, not re-sent", row.id, row.key, found
        )
        self._mark_sent(row, found)
        return True

    def _find_in_slack(
        self, row: OutboxMessage, channel: str, thread_ts: str | None
    ) -> tuple[str, str] | None:
        """(channel, ts) of the message carrying this row's key (or, for an upload, its file), if Slack has
        it."""
        oldest = f"{row.created_at.timestamp() - 60:.6f}"
        if is_user_id(channel):
            # A nudge is posted "to" a person and lands in the app's DM with them; that DM's history is read
            # by its own id (conversations.history refuses a user id with channel_not_found).
            channel = self._client.conversations_open(users=channel)["channel"]["id"]
        try:
            if thread_ts:
                page = self._client.conversations_replies(
                    channel=channel, ts=thread_ts, include_all_metadata=True, limit=RECOVERY_LOOKBACK
                )
            else:
                page = self._client.conversations_history(
                    channel=channel, oldest=oldest, include_all_metadata=True, limit=RECOVERY_LOOKBACK
                )
        except SlackApiError as exc:
            if exc.response.get("error") == "not_in_channel":
                return None  # posting needs membership, so nothing was posted there
            raise
        filename = row.payload.get("filename")
        messages: list[dict[str, Any]] = page.get("messages", [])
        for message in messages:
            metadata = message.get("metadata") or {}
            if metadata.get("event_type") == OUTBOX_EVENT_TYPE and (
                (metadata.get("event_payload") or {}).get("key") == row.key
            ):
                return channel, message["ts"]
            if row.kind == OutboxKind.UPLOAD and any(
                f.get("name") == filename for f in message.get("files") or []
            ):
                return channel, message["ts"]
        return None

    def _open_channel(self, name: str, *, create: bool) -> dict[str, Any]:
        """conversations.create; when the name is taken, the existing channel is found and joined."""
        name = name.strip().lstrip("#")
        if create and not is_channel_id(name):
            try:
                created = self._client.conversations_create(name=name, is_private=False)["channel"]
            except SlackApiError as exc:
                if exc.response.get("error") != "name_taken":
                    raise
            else:
                self._channels.remember(name, created["id"])
                return {"id": created["id"], "name": created["name"], "is_private": False}
        channel_id = self._channels.resolve(name)
        try:
            joined = self._client.conversations_join(channel=channel_id)["channel"]
        except SlackApiError as exc:
            # Slack: a private channel is joined only by invitation; the bot can see it, so it is in it.
            if exc.response.get("error") != "method_not_supported_for_channel_type":
                raise
            info = self._client.conversations_info(channel=channel_id)["channel"]
            return {"id": channel_id, "name": info.get("name", name), "is_private": True}
        is_private = bool(joined.get("is_private"))
        return {"id": channel_id, "name": joined.get("name", name), "is_private": is_private}

    def _with_join(self, channel: str, call: Callable[[], _T]) -> _T:
        """Run `call`; on `not_in_channel`, join the (public) channel once and try again."""
        try:
            return call()
        except SlackApiError as exc:
            if exc.response.get("error") != "not_in_channel":
                raise
            self._channels.join(channel)
            return call()

    def _message_location(self, message_key: str | None) -> SlackMessage | None:
        if not message_key:
            return None
        with read_scope(self._engine) as session:
            return session.get(SlackMessage, message_key)

    def _thread_ts(self, thread_of: str | None) -> str | None:
        if not thread_of:
            return None
        parent = self._message_location(thread_of)
        if parent is None:
            # The parent is itself still in the outbox: try again shortly, without using up an attempt.
            raise _Retry(f"waiting for {thread_of} to be posted", after=1.0, counts=False)
        return parent.ts

    def _mark_sent(
        self,
        row: OutboxMessage,
        posted: tuple[str, str] | None,
        then: Callable[[Session], None] | None = None,
    ) -> None:
        now = utcnow()
        with session_scope(self._engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(
                    status=OutboxStatus.SENT,
                    sent_at=now,
                    attempts=row.attempts + 1,
                    claimed_until=None,
                    last_error=None,
                )
            )
            if posted is not None and row.message_key:
                channel, ts = posted
                session.merge(SlackMessage(key=row.message_key, channel=channel, ts=ts, updated_at=now))
            if then is not None:
                then(session)

    def _reschedule(self, row: OutboxMessage, retry: _Retry) -> None:
        attempts = row.attempts + (1 if retry.counts else 0)
        if attempts >= MAX_ATTEMPTS:
            self._park(row, f"gave up after {attempts} attempts: {retry}")
            return
        delay = retry.after if retry.after is not None else min(self._max_backoff, 2.0**attempts)
        with session_scope(self._engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(
                    attempts=attempts,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    claimed_until=None,
                    last_error=str(retry),
                )
            )
        log.info("outbox row %s (%s) retries in %.1f s: %s", row.id, row.key, delay, retry)

    def _park(self, row: OutboxMessage, error: str) -> None:
        log.error("outbox row %s (%s) parked: %s", row.id, row.key, error)
        with session_scope(self._engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(
                    status=OutboxStatus.PARKED,
                    attempts=row.attempts + 1,
                    claimed_until=None,
                    last_error=error,
                )
            )
