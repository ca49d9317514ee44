"""The tracker worker: makes each action item's issue in Jira or GitHub match the item.

Work is the `tracker_links` rows owed a sync (bot/trackers/links.py, written in the transaction of the
change). Like the Slack outbox (outbox_worker.py), and on its own rows:

- Claimed for a short lease under `FOR UPDATE SKIP LOCKED` (`BEGIN IMMEDIATE` on SQLite): two replicas
  never sync one item at once. The tracker is called outside any transaction.
- Exactly one issue per item, across crashes and replicas: a link without an issue first looks for one
  carrying its `ref` (created by an attempt whose answer was lost, or whose process died before it could
  record it) and creates one only when there is none; a created issue is recorded at once.
- Retried with back-off (2, 4, 8 ... s up to `max_backoff`) while the tracker is down, times out or
  answers 5xx; a rate-limited answer waits what the tracker asked (Retry-After, GitHub's
  x-ratelimit-reset) without counting as a failure. A refusal retrying cannot fix (bad credentials,
  project or permission, a field refused) parks the link with the tracker's message: logged at ERROR,
  `/healthz` degraded until a later change to the item retries it.
- Changes made while it syncs are not lost: a sync records the `version` it made true, and a link whose
  version moved on meanwhile stays pending.

With `poll_minutes` set, it also reads the linked issues every that many minutes and applies what changed
there (for trackers that cannot reach the bot's webhooks).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, select

from bot.core.clock import utcnow
from bot.core.config import Settings
from bot.core.db import read_scope, session_scope
from bot.core.models import ActionItem, ActionItemStatus, Incident, SlackMessage, TrackerLink, TrackerSync
from bot.runtime.workers import PollingWorker
from bot.slack.notices import summary_key
from bot.trackers.base import IssueContent, IssueGone, RemoteIssue, Tracker, TrackerRefused, TrackerRetry
from bot.trackers.github import GitHubClient, GitHubTracker
from bot.trackers.jira import JiraTracker
from bot.trackers.links import issue_content

log = logging.getLogger(__name__)

BATCH = 20
# (tracker, issue id, done or None for deleted, at) -> anything: the flow that applies a remote change.
RemoteChange = Callable[[str, str, bool | None, datetime], object]
# (item ids, at) -> anything: the flow that shows in Slack the issues that were created or changed state.
IssuesShown = Callable[[set[int], datetime], object]


class TrackerWorker(PollingWorker):
    def __init__(
        self,
        *,
        engine: Engine,
        tracker: Tracker,
        on_remote_change: RemoteChange,
        on_shown: IssuesShown = lambda _items, _at: None,
        owner_email: Callable[[str], str | None] = lambda _user: None,
        poll_interval: float = 0.5,
        max_backoff: float = 300.0,
        claim_seconds: float = 60.0,
        poll_minutes: int = 0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.worker_id = f"tracker-{uuid.uuid4().hex[:8]}"
        super().__init__(name=self.worker_id, poll_interval=poll_interval)
        self._engine = engine
        self._tracker = tracker
        self._on_remote_change = on_remote_change
        self._on_shown = on_shown
        self._owner_email = owner_email
        self._max_backoff = max_backoff
        self._claim_seconds = claim_seconds
        self._poll_every = timedelta(minutes=poll_minutes) if poll_minutes else None
        self._next_poll: datetime | None = None
        self._clock = clock

    def run_once(self, now: datetime | None = None) -> int:
        now = now or self._clock()
        claimed = self._claim(now)
        shown: set[int] = set()
        for link_id, version in claimed:
            item_id = self._sync(link_id, version, now)
            if item_id is not None:
                shown.add(item_id)
        if shown:
            self._on_shown(shown, now)
        if self._poll_every is not None and (self._next_poll is None or now >= self._next_poll):
            self._next_poll = now + self._poll_every
            self.poll(now)
        return len(claimed)

    def _claim(self, now: datetime) -> list[tuple[int, int]]:
        due = (
            select(TrackerLink.id, TrackerLink.version)
            .where(TrackerLink.sync == TrackerSync.PENDING, TrackerLink.next_attempt_at <= now)
            .where(or_(col(TrackerLink.claimed_until).is_(None), col(TrackerLink.claimed_until) < now))
            .order_by(col(TrackerLink.id))
        )
        with read_scope(self._engine) as session:  # an idle poll reads beside the writers
            if session.execute(due.limit(1)).first() is None:
                return []
        with session_scope(self._engine) as session:
            found = [
                (int(row_id), int(version))
                for row_id, version in session.execute(
                    due.limit(BATCH).with_for_update(skip_locked=True, of=TrackerLink)
                )
            ]
            if found:
                session.execute(
                    update(TrackerLink)
                    .where(col(TrackerLink.id).in_([row_id for row_id, _ in found]))
                    .values(
                        claimed_by=self.worker_id, claimed_until=now + timedelta(seconds=self._claim_seconds)
                    )
                )
        return found

    def _sync(self, link_id: int, version: int, now: datetime) -> int | None:
        """Make the issue match the item; returns the item's id when Slack should show a change (the
        issue is new, or its state moved)."""
        try:
            with read_scope(self._engine) as session:
                link = session.get(TrackerLink, link_id)
                item = session.get(ActionItem, link.action_item_id) if link else None
                issue_id = link.issue_id if link else None
            if item is None:  # the item was deleted from its post-mortem: its issue is closed
                closed = self._tracker.set_done(issue_id, True) if issue_id else None
                self._record(link_id, version, closed, now)
                return None
            with read_scope(self._engine) as session:
                link = session.get(TrackerLink, link_id)
                assert link is not None  # links are never deleted
                content = self._content(session, link, item)
                want_done = item.status == ActionItemStatus.DONE
                seen = (link.issue_key, link.remote_done)
            remote = self._push(link_id, issue_id, content, want_done)
            self._record(link_id, version, remote, now)
            return item.id if (issue_id is None or seen != (remote.key, remote.done)) else None
        except TrackerRetry as retry:
            self._retry(link_id, str(retry), now, after=retry.after)
        except TrackerRefused as refused:
            log.error("tracker link %s parked: %s", link_id, refused)
            self._release(link_id, sync=TrackerSync.PARKED, last_error=str(refused))
        except IssueGone:
            self._on_remote_change(self._tracker.name, issue_id or "", None, now)
        except Exception as exc:  # a bug or a database hiccup: retried, counted, visible in /healthz
            log.exception("tracker link %s: sync failed", link_id)
            self._retry(link_id, f"{type(exc).__name__}: {exc}", now, after=None)
        return None

    def _content(self, session: Session, link: TrackerLink, item: ActionItem) -> IssueContent:
        incident = session.get(Incident, item.incident_id)
        summary = session.get(SlackMessage, summary_key(incident)) if incident else None
        # Slack's permalink form; it opens the summary, with the document in the incident's thread.
        document_url = None
        if summary is not None:
            document_url = f"https://slack.com/archives/{summary.channel}/p{summary.ts.replace('.', '')}"
        return issue_content(
            session,
            item,
            ref=link.ref,
            document_url=document_url,
            owner_email=self._owner_email(item.owner_id) if item.owner_id else None,
        )

    def _push(self, link_id: int, issue_id: str | None, content: IssueContent, done: bool) -> RemoteIssue:
        if issue_id is None:
            found = self._tracker.find(content.ref)
            if found is None:
                created = self._tracker.create(content, done=done)
                self._remember(link_id, created)
                return created
            self._remember(link_id, found)
            issue_id = found.issue_id
        self._tracker.update(issue_id, content)
        return self._tracker.set_done(issue_id, done)

    def _remember(self, link_id: int, remote: RemoteIssue) -> None:
        """Record the issue the moment it exists, so a later failure of this sync never loses it."""
        with session_scope(self._engine) as session:
            session.execute(
                update(TrackerLink)
                .where(col(TrackerLink.id) == link_id)
                .values(issue_id=remote.issue_id, issue_key=remote.key, issue_url=remote.url)
            )

    def _record(self, link_id: int, version: int, remote: RemoteIssue | None, now: datetime) -> None:
        with session_scope(self._engine) as session:
            link = session.get(TrackerLink, link_id)
            if link is None:
                return
            if remote is not None:
                link.issue_id, link.issue_key, link.issue_url = remote.issue_id, remote.key, remote.url
                link.remote_done = remote.done
            link.synced_version = max(link.synced_version, version)
            if link.sync == TrackerSync.PENDING and link.version <= version:
                link.sync = TrackerSync.SYNCED
            link.attempts, link.last_error = 0, None
            link.claimed_by = link.claimed_until = None
            link.updated_at = now
            session.add(link)

    def _retry(self, link_id: int, reason: str, now: datetime, *, after: float | None) -> None:
        with session_scope(self._engine) as session:
            link = session.get(TrackerLink, link_id)
            if link is None:
                return
            if after is None:  # a failure: back off; a rate limit says how long and is no failure
                link.attempts += 1
                after = min(self._max_backoff, 2.0**link.attempts)
            log.warning("tracker link %s: %s (again in %.0f s)", link_id, reason, after)
            link.next_attempt_at = now + timedelta(seconds=after)
            link.last_error = reason
            link.claimed_by = link.claimed_until = None
            session.add(link)

    def _release(self, link_id: int, *, sync: TrackerSync, last_error: str) -> None:
        with session_scope(self._engine) as session:
            session.execute(
                update(TrackerLink)
                .where(col(TrackerLink.id) == link_id)
                .values(sync=sync, last_error=last_error, claimed_by=None, claimed_until=None)
            )

    def poll(self, now: datetime) -> None:
        """Read every linked issue and apply what changed in the tracker (done, reopened, deleted)."""
        with read_scope(self._engine) as session:
            linked = list(
                session.exec(
                    select(TrackerLink.issue_id, TrackerLink.remote_done).where(
                        TrackerLink.sync == TrackerSync.SYNCED, col(TrackerLink.issue_id).is_not(None)
                    )
                )
            )
        for issue_id, remote_done in linked:
            assert issue_id is not None
            try:
                done: bool | None = self._tracker.get(issue_id).done
            except IssueGone:
                done = None
            except (TrackerRetry, TrackerRefused) as exc:
                log.warning("tracker poll stopped: %s", exc)
                return
            if done != remote_done:
                self._on_remote_change(self._tracker.name, issue_id, done, now)


def make_tracker(settings: Settings) -> Tracker | None:
    """The tracker ACTION_ITEM_TRACKER names (settings.require_tracker() checked its settings)."""
    timeout = settings.slack_api_timeout_seconds
    if settings.action_item_tracker == "jira":
        return JiraTracker(
            url=settings.jira_url or "",
            email=settings.jira_email or "",
            api_token=settings.jira_api_token or "",
            project_key=settings.jira_project_key or "",
            issue_type=settings.jira_issue_type,
            labels=settings.jira_labels,
            timeout=timeout,
        )
    if settings.action_item_tracker == "github":
        client = GitHubClient(
            api_url=settings.github_api_url,
            token=settings.github_token or "",
            repository=settings.github_repository or "",
            timeout=timeout,
        )
        return GitHubTracker(client)
    return None


def slack_user_email(client: WebClient) -> Callable[[str], str | None]:
    """A Slack user's e-mail (users.info, scope users:read.email), to assign their Jira issue; None when
    Slack does not say."""

    def lookup(user_id: str) -> str | None:
        try:
            profile = client.users_info(user=user_id)["user"].get("profile") or {}
        except SlackApiError:
            return None
        return profile.get("email") or None

    return lookup
