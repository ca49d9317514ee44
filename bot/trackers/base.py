"""What the tracker worker needs from a tracker, whichever it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True)
class IssueContent:
    """What an action item's issue says. `ref` is the idempotency key the issue carries (see TrackerLink)."""

    ref: str
    title: str
    description: str  # plain text; each tracker renders it in its own format
    due_date: date | None
    owner_email: str | None


@dataclass(frozen=True)
class RemoteIssue:
    issue_id: str  # Jira's issue id, GitHub's issue number
    key: str  # what people read: "OPS-12", "#7"
    url: str
    done: bool  # Jira: status category "done"; GitHub: closed


class TrackerRetry(Exception):
    """The tracker is down, slow or rate-limiting: try again, not before `after` seconds when it said so."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class TrackerRefused(Exception):
    """The tracker refused in a way retrying cannot fix (bad credentials, project, permission, field)."""


class IssueGone(Exception):
    """The linked issue no longer exists in the tracker (deleted): the item is unlinked."""


class Tracker(Protocol):
    name: str

    def find(self, ref: str) -> RemoteIssue | None:
        """The issue created earlier for `ref`, if any (a create whose answer was lost, or a crash)."""

    def create(self, content: IssueContent, *, done: bool) -> RemoteIssue: ...

    def update(self, issue_id: str, content: IssueContent) -> None: ...

    def set_done(self, issue_id: str, done: bool) -> RemoteIssue:
        """Close or reopen the issue (no change when it already is); returns its state after."""

    def get(self, issue_id: str) -> RemoteIssue:
        """The issue as it is now (polling); raises IssueGone when it was deleted."""
