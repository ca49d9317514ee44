"""All tables but `incidents` (bot/core/incident_table.py, re-exported here). Instants are stored in UTC;
durations are integer seconds written at the transition, so KPIs are plain SQL aggregates.

All datetimes are timezone-aware UTC (SQLModel's UTCDateTime); convert to `TIMEZONE` only when rendering.
Schema changes go through an Alembic migration in `bot/core/migrations/versions/`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.core.incident_table import Incident as Incident
from bot.core.incident_table import IncidentStatus as IncidentStatus
from bot.core.job_tables import JobRun, SchedulerLease
from bot.core.service_owners import ServiceOwnerLookup


class PostmortemStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class ActionItemStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    PARKED = "parked"
    # Given up on purpose: stale when its turn came (a reminder after an outage), or dropped by a person.
    DROPPED = "dropped"


class TrackerSync(StrEnum):
    PENDING = "pending"  # the issue must be made to match the item (created, edited, closed or reopened)
    SYNCED = "synced"
    PARKED = "parked"  # the tracker refused for good (bad project key, no permission): see last_error
    UNLINKED = "unlinked"  # the issue was deleted in the tracker; the item lives on without one


class Postmortem(SQLModel, table=True):
    __tablename__ = "postmortems"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", unique=True)
    status: str = Field(default=PostmortemStatus.DRAFT, max_length=32)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    impact: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    root_cause: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    resolution: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    severity: str | None = Field(default=None, max_length=16)
    services: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=list))
    resolution_minutes: int | None = None
    # Who owes the write-up (nudged by the reminders); set when the post-mortem is first opened.
    owner_id: str | None = Field(default=None, max_length=32)
    # An incident in a private channel is summarised in public only when someone opts in.
    share_publicly: bool = False
    document: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    revision: int = 0
    snoozed_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None
    published_by: str | None = Field(default=None, max_length=32)
    # Its incident was reopened after it was published: it needs a review, until it is published again.
    needs_review_since: datetime | None = None


class PostmortemRevision(SQLModel, table=True):
    """One save of a post-mortem: who, when, which fields, and the whole content after the save."""

    __tablename__ = "postmortem_revisions"
    __table_args__ = (
        UniqueConstraint("postmortem_id", "number"),
        UniqueConstraint(
            "postmortem_id", "submission_key", name="uq_postmortem_revisions_postmortem_id_submission_key"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    postmortem_id: int = Field(foreign_key="postmortems.id", index=True)
    number: int
    author_id: str = Field(max_length=32)
    action: str = Field(max_length=16)  # "save", "publish" or "restore"
    changed_fields: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The form submission that made it (its view and values): one delivered twice saves once. None for
    # restores and saves from elsewhere.
    submission_key: str | None = Field(default=None, max_length=64)
    created_at: datetime


class ActionItem(SQLModel, table=True):
    __tablename__ = "action_items"
    __table_args__ = (
        Index("ix_action_items_owner_status", "owner_id", "status"),
        Index("ix_action_items_status_due", "status", "due_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    postmortem_id: int = Field(foreign_key="postmortems.id", index=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    position: int = 0
    text: str = Field(sa_column=Column(Text, nullable=False))
    owner_id: str | None = Field(default=None, max_length=32)
    due_date: date | None = None
    status: str = Field(default=ActionItemStatus.OPEN, max_length=16)
    snoozed_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    # A Slack user id, or the tracker's name ("jira", "github") when the item was closed there.
    completed_by: str | None = Field(default=None, max_length=32)


class TrackerLink(SQLModel, table=True):
    """An action item's issue in the team's tracker, and the durable work of keeping it in step.

    `ref` is the idempotency key written into the issue when it is created (a Jira label, a marker in a
    GitHub issue's body): a worker that crashed after the tracker created the issue finds it by `ref`
    instead of creating a second one. `version` counts the changes owed, `synced_version` the last one
    the tracker confirmed."""

    __tablename__ = "tracker_links"
    __table_args__ = (
        Index("ix_tracker_links_sync_next", "sync", "next_attempt_at"),
        UniqueConstraint("tracker", "issue_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    action_item_id: int = Field(unique=True)
    tracker: str = Field(max_length=16)  # "jira" or "github"
    ref: str = Field(max_length=64, unique=True)
    issue_id: str | None = Field(default=None, max_length=64)  # Jira's issue id, GitHub's issue number
    issue_key: str | None = Field(default=None, max_length=64)  # "OPS-12", "#7"
    issue_url: str | None = Field(default=None, max_length=1024)
    remote_done: bool = False  # the issue's state as last seen (done category / closed)
    sync: str = Field(default=TrackerSync.PENDING, max_length=16)
    version: int = 1
    synced_version: int = 0
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = None
    created_at: datetime
    updated_at: datetime


class TimelineEntry(SQLModel, table=True):
    """A moment of an incident: a PagerDuty event, a pinned Slack message, a note."""

    __tablename__ = "timeline_entries"
    __table_args__ = (Index("ix_timeline_incident_occurred", "incident_id", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id")
    # Makes capture idempotent: "slack:<channel>:<ts>" or "pagerduty:<event id>".
    source_key: str = Field(max_length=255, unique=True)
    kind: str = Field(max_length=32)
    occurred_at: datetime
    author: str | None = Field(default=None, max_length=255)
    text: str = Field(sa_column=Column(Text, nullable=False))
    permalink: str | None = Field(default=None, max_length=1024)
    created_at: datetime


class InboundDelivery(SQLModel, table=True):
    """Append-only archive of raw inbound payloads, keyed by their delivery id (dedupe on retries)."""

    __tablename__ = "inbound_deliveries"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id"),
        # A new incident looks up the notes that waited for it (bot/domain/pagerduty.py _replay_waiting).
        Index("ix_inbound_deliveries_waiting", "source", "error"),
        # The processor's claim (bot/runtime/processor.py): the unprocessed rows of a source, oldest first.
        Index("ix_inbound_deliveries_unprocessed", "source", "processed_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)  # "pagerduty" or "slack"
    delivery_id: str = Field(max_length=255)
    event_type: str | None = Field(default=None, max_length=128)
    body: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime
    processed_at: datetime | None = None
    # Why the last attempt did not process it: an exception, or the incident a note is waiting for.
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempts: int = 0  # processing attempts that raised
    next_attempt_at: datetime | None = None  # not retried before then; None: due as soon as stored


class OutboxMessage(SQLModel, table=True):
    """A Slack call the bot owes, delivered by the outbox worker. `key` makes enqueueing idempotent."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        # The claim's "no earlier pending row for this message_key" check.
        Index("ix_outbox_message_key", "message_key", "status"),
        # The claim's "no earlier pending logical message in this channel" check.
        Index("ix_outbox_channel", "channel", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    # "post" (post or update the logical message `message_key`), "reply", "ephemeral", "upload"...
    kind: str = Field(max_length=32)
    channel: str = Field(max_length=80)
    message_key: str | None = Field(default=None, max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=OutboxStatus.PENDING, max_length=16)
    attempts: int = 0
    # Claimed lowest first (then oldest first): 0 a new high-urgency incident's channel and card, 1 the
    # rest, 2 routine (digest, reminders, nudges, wins); see bot/slack/outbox.py Priority.
    priority: int = 1
    next_attempt_at: datetime
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # A worker claims a row for a short lease instead of holding a transaction open across the Slack
    # call (on SQLite that would block every other writer for the length of the call).
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = None
    created_at: datetime
    sent_at: datetime | None = None


class SlackMessage(SQLModel, table=True):
    """Where a logical message (an incident card, a post-mortem summary) lives, so it is updated in place."""

    __tablename__ = "slack_messages"

    key: str = Field(primary_key=True, max_length=255)
    channel: str = Field(max_length=32)
    ts: str = Field(max_length=32)
    updated_at: datetime


class SlackChannel(SQLModel, table=True):
    """What the bot last learned of a channel it posts to, from Slack's events (archive, rename, conversion,
    deletion, the bot removed) and its answers: where a post may go, and whether the channel is private."""

    __tablename__ = "slack_channels"

    id: str = Field(primary_key=True, max_length=32)
    name: str | None = Field(default=None, max_length=80)
    is_private: bool = False
    is_archived: bool = False
    is_deleted: bool = False
    # Removed by a person: the bot never joins it again by itself (only an invitation brings it back).
    bot_removed: bool = False
    updated_at: datetime


class Attachment(SQLModel, table=True):
    """Binary content an outbox row uploads (a digest chart, a Markdown document)."""

    __tablename__ = "attachments"

    id: int | None = Field(default=None, primary_key=True)
    filename: str = Field(max_length=255)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime


class Announcement(SQLModel, table=True):
    """A win or a threshold alert that was announced, so each occurrence is announced exactly once."""

    __tablename__ = "announcements"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    kind: str = Field(max_length=32)
    created_at: datetime


__all__ = [
    "ActionItem",
    "ActionItemStatus",
    "Announcement",
    "Attachment",
    "InboundDelivery",
    "Incident",
    "IncidentStatus",
    "JobRun",
    "OutboxMessage",
    "OutboxStatus",
    "Postmortem",
    "PostmortemRevision",
    "PostmortemStatus",
    "SchedulerLease",
    "ServiceOwnerLookup",
    "SlackChannel",
    "SlackMessage",
    "TimelineEntry",
    "TrackerLink",
    "TrackerSync",
]
