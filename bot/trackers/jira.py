"""Jira Cloud (REST API v3, basic auth with an e-mail and an API token).

Statuses are read by their category ("new", "indeterminate", "done"), never by name: every project's
workflow names its statuses differently, but each status belongs to one of those three categories. To close
an issue the bot asks for the transitions open from its current status and takes the first that leads to a
"done" status (to reopen, the first that leads out of "done", preferring "new"). The item's idempotency key
is a label on the issue (`ref`), searched with JQL after a crash.
"""

from __future__ import annotations

import base64
from typing import Any

from bot.trackers.base import IssueContent, IssueGone, RemoteIssue, TrackerRefused
from bot.trackers.http import HttpError, JsonHttp, classified

API = "/rest/api/3"
SUMMARY_LIMIT = 255  # Jira refuses a longer summary


def basic_credentials(email: str, api_token: str) -> str:
    """What follows "Basic " in the Authorization header (secret: it holds the token)."""
    return base64.b64encode(f"{email}:{api_token}".encode()).decode()


class JiraTracker:
    name = "jira"

    def __init__(
        self,
        *,
        url: str,
        email: str,
        api_token: str,
        project_key: str,
        issue_type: str,
        labels: list[str],
        timeout: float = 10.0,
    ) -> None:
        credentials = basic_credentials(email, api_token)
        self._http = JsonHttp(url, {"Authorization": f"Basic {credentials}"}, timeout=timeout)
        self._url = url.rstrip("/")
        self._project = project_key
        self._issue_type = issue_type
        self._labels = labels

    def _call(self, method: str, path: str, *, body: Any = None, issue: str | None = None) -> Any:
        try:
            return self._http.call(method, API + path, body=body).body
        except HttpError as exc:
            if issue is not None and exc.answer.status == 404:
                raise IssueGone(f"Jira issue {issue} not found") from None
            raise classified(exc, what=f"Jira {method} {path}") from None

    def _remote(self, issue: dict[str, Any]) -> RemoteIssue:
        category = issue.get("fields", {}).get("status", {}).get("statusCategory", {}).get("key")
        key = str(issue["key"])
        return RemoteIssue(str(issue["id"]), key, f"{self._url}/browse/{key}", category == "done")

    def find(self, ref: str) -> RemoteIssue | None:
        jql = f'project = "{self._project}" AND labels = "{ref}"'
        found = self._call("POST", "/search/jql", body={"jql": jql, "fields": ["status"], "maxResults": 1})
        issues = (found or {}).get("issues") or []
        return self._remote(issues[0]) if issues else None

    def _fields(self, content: IssueContent) -> dict[str, Any]:
        paragraphs = [
            {"type": "paragraph", "content": [{"type": "text", "text": line}]}
            for line in content.description.splitlines()
            if line.strip()
        ]
        return {
            "summary": " ".join(content.title.split())[:SUMMARY_LIMIT],
            "description": {"type": "doc", "version": 1, "content": paragraphs},
            "duedate": content.due_date.isoformat() if content.due_date else None,
        }

    def _account_id(self, email: str | None) -> str | None:
        """The owner's Jira account by e-mail, where Jira knows it (and shows it to this token)."""
        if not email:
            return None
        try:
            users = self._http.call("GET", API + "/user/search", query={"query": email}).body
        except HttpError:
            return None  # an unknown or hidden owner leaves the issue unassigned
        return str(users[0]["accountId"]) if users else None

    def create(self, content: IssueContent, *, done: bool) -> RemoteIssue:
        fields = {
            **self._fields(content),
            "project": {"key": self._project},
            "issuetype": {"name": self._issue_type},
            "labels": [*self._labels, content.ref],
        }
        account = self._account_id(content.owner_email)
        if account:
            fields["assignee"] = {"accountId": account}
        created = self._call("POST", "/issue", body={"fields": fields})
        issue_id = str(created["id"])
        return self.set_done(issue_id, True) if done else self.get(issue_id)

    def update(self, issue_id: str, content: IssueContent) -> None:
        self._call("PUT", f"/issue/{issue_id}", body={"fields": self._fields(content)}, issue=issue_id)

    def get(self, issue_id: str) -> RemoteIssue:
        return self._remote(self._call("GET", f"/issue/{issue_id}?fields=status", issue=issue_id))

    def set_done(self, issue_id: str, done: bool) -> RemoteIssue:
        issue = self.get(issue_id)
        if issue.done == done:
            return issue
        answer = self._call("GET", f"/issue/{issue_id}/transitions", issue=issue_id)
        transitions = (answer or {}).get("transitions") or []

        def category(transition: dict[str, Any]) -> str:
            return str(transition.get("to", {}).get("statusCategory", {}).get("key"))

        if done:
            fitting = [t for t in transitions if category(t) == "done"]
        else:
            reopening = (t for t in transitions if category(t) != "done")
            fitting = sorted(reopening, key=lambda t: category(t) != "new")
        if not fitting:
            want = "a done" if done else "an open"
            raise TrackerRefused(f"Jira issue {issue.key}: no transition to {want} status from where it is")
        transition = {"transition": {"id": fitting[0]["id"]}}
        self._call("POST", f"/issue/{issue_id}/transitions", body=transition, issue=issue_id)
        return self.get(issue_id)
