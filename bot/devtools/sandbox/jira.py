"""A local, strict stand-in for Jira Cloud's REST API v3, over real HTTP (`JiraStandIn`).

Strict where Jira is: basic auth with the e-mail and API token (401 otherwise); a create needs a project
that exists, an issue type of that project and a summary of at most 255 characters; a description must be
an Atlassian Document Format document; labels have no spaces; a due date is YYYY-MM-DD; a transition must be
one open from the issue's current status. Its workflow names the statuses unlike the categories they belong
to ("Backlog" is new, "Doing" indeterminate, "Shipped" done), so only a client that reads status categories
closes issues. Rate-limited calls get 429 with Retry-After. With `webhook_url` set it sends
`jira:issue_updated` (with the changelog of the fields that changed) and `jira:issue_deleted` deliveries,
signed with `webhook_secret` in X-Hub-Signature (for every change, the API's too, as Jira does), each with
its X-Atlassian-Webhook-Identifier, from a thread of their own (they may arrive after later changes).
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .tracker_server import JsonServer, Reply, TrackerError

STATUSES = {"10000": ("Backlog", "new"), "3": ("Doing", "indeterminate"), "10001": ("Shipped", "done")}
# transition id -> target status; every transition is open from every other status.
TRANSITIONS = {"11": ("Reopen", "10000"), "21": ("Start", "3"), "31": ("Ship it", "10001")}
ISSUE_TYPES = ("Task", "Bug")


@dataclass
class JiraIssue:
    id: str
    key: str
    fields: dict[str, Any]
    status: str = "10000"
    history: list[str] = field(default_factory=list)  # status names, in order

    @property
    def category(self) -> str:
        return STATUSES[self.status][1]

    def to_api(self) -> dict[str, Any]:
        name, category = STATUSES[self.status]
        status = {"id": self.status, "name": name, "statusCategory": {"key": category}}
        return {"id": self.id, "key": self.key, "fields": {**self.fields, "status": status}}


def _error(field_name: str, message: str) -> TrackerError:
    return TrackerError(400, {"errorMessages": [], "errors": {field_name: message}})


class JiraStandIn(JsonServer):
    def __init__(
        self,
        *,
        email: str = "bot@example.com",
        api_token: str = "jira-token",
        project_key: str = "OPS",
        users: dict[str, str] | None = None,  # e-mail -> account id
        webhook_secret: str = "jira-webhook-secret",
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.email, self.api_token, self.project_key = email, api_token, project_key
        self.users = users or {}
        self.webhook_secret = webhook_secret
        self.webhook_url: str | None = None
        self.issues: dict[str, JiraIssue] = {}
        self._next = 10001
        api = "/rest/api/3"
        self.route("POST", api + "/issue", self._create)
        self.route("GET", api + r"/issue/(?P<issue>[^/]+)", self._get)
        self.route("PUT", api + r"/issue/(?P<issue>[^/]+)", self._edit)
        self.route("GET", api + r"/issue/(?P<issue>[^/]+)/transitions", self._transitions)
        self.route("POST", api + r"/issue/(?P<issue>[^/]+)/transitions", self._transition)
        self.route("POST", api + "/search/jql", self._search)
        self.route("GET", api + "/user/search", self._user_search)

    def check_auth(self, headers: dict[str, str]) -> None:
        expected = base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            raise TrackerError(401, {"errorMessages": ["You are not authenticated."]})

    def rate_limit_reply(self) -> Reply:
        return Reply(
            429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": str(self.faults.retry_after)}
        )

    # the API --------------------------------------------------------------------------------

    def _issue(self, ref: str) -> JiraIssue:
        for issue in self.issues.values():
            if ref in (issue.id, issue.key):
                return issue
        raise TrackerError(
            404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
        )

    def _checked_fields(self, fields: Any, *, creating: bool) -> dict[str, Any]:
        if not isinstance(fields, dict):
            raise TrackerError(400, {"errorMessages": ["fields is required"], "errors": {}})
        checked = dict(fields)
        if creating:
            project = fields.get("project")
            if not isinstance(project, dict) or project.get("key") != self.project_key:
                raise _error("project", "Specify a valid project ID or key")
            issue_type = fields.get("issuetype")
            if not isinstance(issue_type, dict) or issue_type.get("name") not in ISSUE_TYPES:
                raise _error("issuetype", "Specify a valid issue type")
            if not fields.get("summary"):
                raise _error("summary", "You must specify a summary of the issue.")
        summary = fields.get("summary")
        if summary is not None and (not isinstance(summary, str) or len(summary) > 255 or "\n" in summary):
            raise _error("summary", "Summary must be less than 255 characters and on one line.")
        description = fields.get("description")
        if description is not None and not (
            isinstance(description, dict)
            and description.get("type") == "doc"
            and description.get("version") == 1
        ):
            raise _error("description", "Operation value must be an Atlassian Document.")
        labels = fields.get("labels")
        if labels is not None and not (
            isinstance(labels, list) and all(isinstance(x, str) and x and " " not in x for x in labels)
        ):
            raise _error("labels", "Labels cannot contain spaces.")
        due = fields.get("duedate")
        if due is not None:
            try:
                date.fromisoformat(due)
            except (TypeError, ValueError):
                raise _error("duedate", "Error parsing date string: " + str(due)) from None
        assignee = fields.get("assignee")
        if assignee is not None and assignee.get("accountId") not in self.users.values():
            raise _error("assignee", "User does not exist or you do not have permission to see it.")
        return checked

    def _create(self, _match: dict[str, Any], _query: dict[str, str], body: Any, _h: dict[str, str]) -> Reply:
        fields = self._checked_fields((body or {}).get("fields"), creating=True)
        issue_id, self._next = str(self._next), self._next + 1
        key = f"{self.project_key}-{len(self.issues) + 1}"
        self.issues[issue_id] = JiraIssue(issue_id, key, fields, history=["Backlog"])
        if self.faults.after_create is not None:
            self.faults.after_create()
        return Reply(201, {"id": issue_id, "key": key, "self": f"{self.url}/rest/api/3/issue/{issue_id}"})

    def _get(self, match: dict[str, Any], _query: dict[str, str], _body: Any, _h: dict[str, str]) -> Reply:
        return Reply(200, self._issue(match["issue"]).to_api())

    def _edit(self, match: dict[str, Any], _query: dict[str, str], body: Any, _h: dict[str, str]) -> Reply:
        issue = self._issue(match["issue"])
        fields = self._checked_fields((body or {}).get("fields"), creating=False)
        changed = [name for name, value in fields.items() if issue.fields.get(name) != value]
        issue.fields.update(fields)
        if changed:
            self._notify("jira:issue_updated", issue, [{"field": name} for name in changed])
        return Reply(204)

    def _transitions(
        self, match: dict[str, Any], _query: dict[str, str], _body: Any, _h: dict[str, str]
    ) -> Reply:
        issue = self._issue(match["issue"])
        open_now = [
            {
                "id": tid,
                "name": name,
                "to": {"id": to, "name": STATUSES[to][0], "statusCategory": {"key": STATUSES[to][1]}},
            }
            for tid, (name, to) in TRANSITIONS.items()
            if to != issue.status
        ]
        return Reply(200, {"transitions": open_now})

    def _transition(
        self, match: dict[str, Any], _query: dict[str, str], body: Any, _h: dict[str, str]
    ) -> Reply:
        issue = self._issue(match["issue"])
        transition = (body or {}).get("transition") or {}
        target = TRANSITIONS.get(str(transition.get("id")))
        if target is None or target[1] == issue.status:
            raise TrackerError(
                400, {"errorMessages": ["Transition id is not valid for this issue."], "errors": {}}
            )
        self.move(issue.key, target[1])
        return Reply(204)

    def _search(self, _match: dict[str, Any], _query: dict[str, str], body: Any, _h: dict[str, str]) -> Reply:
        jql = str((body or {}).get("jql") or "")
        found = re.fullmatch(r'project = "(?P<project>[^"]+)" AND labels = "(?P<label>[^"]+)"', jql)
        if found is None:
            raise TrackerError(400, {"errorMessages": [f"The stand-in does not understand the JQL {jql!r}."]})
        issues = [
            issue.to_api()
            for issue in self.issues.values()
            if issue.key.startswith(found["project"] + "-")
            and found["label"] in issue.fields.get("labels", [])
        ]
        return Reply(200, {"issues": issues[: int((body or {}).get("maxResults") or 50)]})

    def _user_search(
        self, _match: dict[str, Any], query: dict[str, str], _body: Any, _h: dict[str, str]
    ) -> Reply:
        account = self.users.get(query.get("query", ""))
        return Reply(200, [{"accountId": account, "active": True}] if account else [])

    # what people do in Jira -----------------------------------------------------------------

    def move(self, key: str, status: str) -> None:
        """Move an issue to a status (by id), as a person would; Jira then sends its webhook."""
        with self.lock:
            issue = self._issue(key)
            before, issue.status = STATUSES[issue.status][0], status
            issue.history.append(STATUSES[status][0])
            change = {"field": "status", "fromString": before, "toString": STATUSES[status][0]}
            self._notify("jira:issue_updated", issue, [change])

    def close(self, key: str) -> None:
        self.move(key, "10001")

    def reopen(self, key: str) -> None:
        self.move(key, "10000")

    def delete(self, key: str) -> None:
        with self.lock:
            issue = self._issue(key)
            del self.issues[issue.id]
            self._notify("jira:issue_deleted", issue)

    def _notify(self, event: str, issue: JiraIssue, changes: list[dict[str, Any]] | None = None) -> None:
        payload: dict[str, Any] = {"timestamp": 0, "webhookEvent": event, "issue": issue.to_api()}
        if changes is not None:
            payload["changelog"] = {"items": changes}
        headers = {"X-Atlassian-Webhook-Identifier": uuid.uuid4().hex}
        self.queue_webhook(self.webhook_url, payload, headers, self.webhook_secret)

    def by_label(self, label: str) -> list[JiraIssue]:
        return [issue for issue in self.issues.values() if label in issue.fields.get("labels", [])]
