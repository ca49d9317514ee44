"""The outbox worker: the one place that posts to Slack outside an interactive request.

Services enqueue durable rows inside their own transaction (so a message exists exactly when the state
change that caused it does); a worker delivers them. `key` makes enqueueing idempotent: the same event
enqueued twice is one message. A "post" row with a `message_key` posts the first time and updates
that same Slack message (`chat.update`) afterwards, so a card or a summary is never posted twice.

Slack rate-limits each method by tier and posts to about one a second per channel, answering 429 with
`Retry-After` (docs/architecture.md, "Slack"): the worker paces its calls by those limits
(outbox_pacing.py), reschedules a 429'd row for its Retry-After, and never blocks a listener.

Delivery guarantee (what the fault tests in tests/faults/ prove):

- Nothing lost: a row stays pending until Slack confirmed it. What a failure does is decided in
  bot/runtime/outbox_errors.py: transient failures (network, time-outs, 5xx, 429) are retried with capped
  back-off for as long as they last and never park; a refusal that no retry can fix parks the row at
  once (logged at ERROR, kept with its `last_error`, counted by `/healthz` and `/metrics`, replayed or
  dropped with `postmortem-bot outbox retry|drop`). While Slack cannot be reached at all the worker
  pauses (one probe per back-off, not one failed call per row) and, once Slack answers, delivers what
  waited in order.
- Never sent by two workers: a worker claims due rows for a short lease (outbox_claims.py), so replicas
  never pick the same row; the Slack call happens after that transaction, outside any lock.
- Never posted twice after a crash: every post carries Slack message metadata with the row's key. A row
  that was tried before (attempts > 0, or a claim that expired because its worker died between sending
  and recording) is first looked up in the channel's recent history or the thread's replies
  (outbox_recovery.py); if Slack already has it, the worker records it instead of posting again.
  Uploads are found the same way by their file name. Updates (`chat.update`) are idempotent by nature.
  Ephemeral messages cannot be looked up: they are at-least-once.
- In order: a row is not claimed while an earlier row for the same `message_key` is pending, so a card's
  "resolved" update can never be posted as a second card ahead of its first post; nor while an earlier
  logical message of its channel is pending, so a prompt never overtakes its card (outbox_claims.py).
  Urgent rows (a new high-urgency incident's channel and card) are claimed before routine ones.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from bot.core.clock import utcnow
from bot.core.db import read_scope, session_scope
from bot.core.models import Attachment, Incident, OutboxMessage, OutboxStatus, SlackMessage
from bot.runtime.invitations import Invitations
from bot.runtime.outbox_claims import claim_due, give_back
from bot.runtime.outbox_errors import MAX_ATTEMPTS, Action, Failure, Wait, backoff, classify
from bot.runtime.outbox_pacing import Limits, Pacer, row_limits
from bot.runtime.outbox_recovery import OUTBOX_EVENT_TYPE, find_in_slack
from bot.runtime.rerouting import may_join, reroute
from bot.runtime.slack_health import SlackHealth
from bot.runtime.workers import PollingWorker
from bot.slack.channel_opening import open_channel
from bot.slack.channels import ChannelDirectory, is_user_id
from bot.slack.outbox import ChannelHook, OutboxKind, stale

log = logging.getLogger(__name__)
_T = TypeVar("_T")

CLAIM_SECONDS = 60
BATCH = 20
MAX_BACKOFF_SECONDS = 300.0


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
        invitations: Invitations | None = None,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        claim_seconds: float = CLAIM_SECONDS,
        health: SlackHealth | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.worker_id = f"outbox-{uuid.uuid4().hex[:8]}"
        super().__init__(name=self.worker_id, poll_interval=poll_interval)
        self._engine = engine
        self._max_backoff = max_backoff
        self._claim_seconds = claim_seconds
        self._on_channel = on_channel
        self._invitations = invitations or Invitations(client=client, pagerduty=None)
        self._client = client
        self._channels = channels
        self.health = health or SlackHealth()
        # Slack's rate limits, kept by spacing the calls (None: no pacing, for a stand-in without limits).
        self._pacer = pacer
        # The one source of "now" for this worker (a test moves it to cover hours of outage in seconds).
        self._clock = clock
        # While Slack cannot be reached: no claims before `_paused_until`; `_outage` failed probes so far.
        self._paused_until: datetime | None = None
        self._outage = 0

    def run_once(self, now: datetime | None = None) -> int:
        """Claim and deliver the rows that are due; returns how many were attempted (a row given back
        because Slack's limits are not free yet is not an attempt)."""
        now = now or self._clock()
        if self._paused_until is not None and now < self._paused_until:
            return 0
        claimed = claim_due(
            self._engine, worker=self.worker_id, now=now, lease=self._claim_seconds, batch=BATCH
        )
        attempted, deferred = 0, []
        for index, (row, retried) in enumerate(claimed):
            if stale(row, now):
                self._finish(row, OutboxStatus.DROPPED, "stale: still undelivered at its stale_at")
                log.warning("outbox row %s (%s) dropped: stale since %s", row.id, row.key, row.created_at)
                continue
            limits, at = self._limits(row), self._clock()
            wait = self._pacer.wait(limits, at) if self._pacer else 0.0
            if wait > 0:
                deferred.append((row, at + timedelta(seconds=wait)))
                continue
            if self._pacer:
                self._pacer.take(limits, at)
            attempted += 1
            failure = self._deliver(row, retried=retried)
            if failure is not None and failure.unreachable:
                self._pause(failure, now)
                give_back(self._engine, [(later, None) for later, _ in claimed[index + 1 :]])
                break
            if failure is not None and failure.after is not None and failure.slack_answered and self._pacer:
                self._pacer.hold(limits, at + timedelta(seconds=failure.after))  # a 429: Retry-After
            if failure is None or failure.slack_answered:
                self._slack_answered()
        give_back(self._engine, deferred)
        return attempted

    def _limits(self, row: OutboxMessage) -> Limits:
        if self._pacer is None:
            return []
        return row_limits(row, updating=self._message_location(row.message_key) is not None)

    def _pause(self, failure: Failure, now: datetime) -> None:
        """Slack is unreachable: every row waits, and the next claim (after the back-off) is the probe."""
        self._outage += 1
        self._paused_until = now + timedelta(seconds=backoff(self._outage, self._max_backoff))
        self.health.unreachable(failure.reason, now)

    def _slack_answered(self) -> None:
        if self._outage or not self.health.up:
            self._outage, self._paused_until = 0, None
            self.health.answered()

    def _deliver(self, row: OutboxMessage, *, retried: bool) -> Failure | None:
        """Send one row and record the outcome; the failure, if it failed."""
        try:
            self._send(row, retried=retried)
            return None
        except Exception as exc:
            failure = classify(exc, f"{row.kind} to {row.channel}")
            refused = exc.response.get("error") if isinstance(exc, SlackApiError) else None
        if failure.unexpected:
            # A malformed payload, a database hiccup while recording: a SUSPECT, parked after MAX_ATTEMPTS
            # (and /healthz says so) instead of being re-claimed forever while the rest of its batch waits.
            log.error("outbox row %s (%s) failed unexpectedly", row.id, row.key, exc_info=True)
        if refused and reroute(self._engine, row, str(refused), at=self._clock()):
            return None  # Slack refused the channel for good, and the row went where people will see it
        if failure.action == Action.PARK:
            self._park(row, failure.reason)
        else:
            self._reschedule(row, failure)
        return failure

    def _send(self, row: OutboxMessage, *, retried: bool) -> None:
        payload = row.payload
        if row.kind == OutboxKind.CHANNEL:
            opened = open_channel(
                self._client,
                self._channels,
                row.channel,
                create=bool(payload.get("create", True)),
                retried=retried,
                unclaimed=self._unclaimed,
            )
            hook = self._on_channel
            then = (lambda session: hook(session, payload, opened)) if hook else None
            self._mark_sent(row, None, then=then)
            return
        channel = self._channels.resolve(row.channel)
        thread_ts = self._thread_ts(payload.get("thread_of"))
        if row.kind == OutboxKind.INVITE:
            self._mark_sent(row, None, then=self._invitations.invite(channel, payload, utcnow()))
        elif row.kind == OutboxKind.EPHEMERAL:
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
            if is_user_id(channel):
                # A file "to" a person is shared in the app's DM with them, which files need by its id.
                channel = self._client.conversations_open(users=channel)["channel"]["id"]
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
        found = find_in_slack(self._client, row, channel, thread_ts)
        if found is None:
            return False
        log.warning(
            "outbox row %s (%s) was already in Slack at %s; recorded, not re-sent", row.id, row.key, found
        )
        self._mark_sent(row, found)
        return True

    def _unclaimed(self, channel_id: str) -> bool:
        with read_scope(self._engine) as session:
            return session.exec(select(Incident.id).where(Incident.channel_id == channel_id)).first() is None

    def _with_join(self, channel: str, call: Callable[[], _T]) -> _T:
        """Run `call`; on `not_in_channel`, join the (public) channel once and try again, unless a person
        removed the bot from it (bot/runtime/rerouting.py)."""
        try:
            return call()
        except SlackApiError as exc:
            if exc.response.get("error") != "not_in_channel" or not may_join(self._engine, channel):
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
            raise Wait(f"waiting for {thread_of} to be posted", after=1.0)
        return parent.ts

    def _mark_sent(
        self,
        row: OutboxMessage,
        posted: tuple[str, str] | None,
        then: Callable[[Session], None] | None = None,
    ) -> None:
        now = self._clock()
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

    def _reschedule(self, row: OutboxMessage, failure: Failure) -> None:
        attempts = row.attempts + (1 if failure.counts else 0)
        if failure.action == Action.SUSPECT and attempts >= MAX_ATTEMPTS:
            self._park(row, f"gave up after {attempts} attempts: {failure.reason}")
            return
        delay = failure.after if failure.after is not None else backoff(attempts, self._max_backoff)
        with session_scope(self._engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(
                    attempts=attempts,
                    next_attempt_at=self._clock() + timedelta(seconds=delay),
                    claimed_until=None,
                    last_error=failure.reason,
                )
            )
        log.info("outbox row %s (%s) retries in %.1f s: %s", row.id, row.key, delay, failure.reason)

    def _park(self, row: OutboxMessage, error: str) -> None:
        log.error("outbox row %s (%s) parked: %s", row.id, row.key, error)
        self._finish(row, OutboxStatus.PARKED, error)

    def _finish(self, row: OutboxMessage, status: OutboxStatus, error: str) -> None:
        with session_scope(self._engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(status=status, attempts=row.attempts + 1, claimed_until=None, last_error=error)
            )
