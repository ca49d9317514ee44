"""A local, strict stand-in for GitHub's REST API (the issues of one repository), over real HTTP
(`GitHubStandIn`).

Strict where GitHub is: a token in `Authorization` (401 "Bad credentials" otherwise); an unknown repository
is 404; a new issue needs a title (422 "Validation Failed"); `state` is open or closed and `state_reason`
one GitHub knows; a deleted issue is 404. Every answer carries the x-ratelimit-* headers; a rate-limited
call gets 403 with x-ratelimit-remaining 0 and x-ratelimit-reset (the primary limit), or with
`secondary=True` 429 with Retry-After. With `webhook_url` set it sends `issues` deliveries (opened, edited,
closed, reopened, deleted) signed with `webhook_secret` in X-Hub-Signature-256, each with X-GitHub-Event
and its X-GitHub-Delivery, for every change (the API's too, as GitHub does).

Pull requests (the docs repository's, bot/loop/docs_sync.py): create needs title, head and base (422
otherwise), a head branch that exists in `git_dir` when that bare repository is given (422 "invalid"), and
no open pull request of the same head and base (422 "A pull request already exists for owner:branch.");
list filters by `head` (only in GitHub's `owner:branch` form), `base` and `state`; update changes title,
body, base and state. Pull requests and issues share their numbers, as on GitHub.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .tracker_server import JsonServer, Reply, TrackerError

STATE_REASONS = {"completed", "not_planned", "reopened", "duplicate", None}


@dataclass
class GitHubIssue:
    number: int
    title: str
    body: str
    labels: list[str]
    html_url: str
    state: str = "open"
    state_reason: str | None = None
    history: list[str] = field(default_factory=list)  # states, in order

    def to_api(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "body": self.body,
            "labels": [{"name": name} for name in self.labels],
            "state": self.state,
            "state_reason": self.state_reason,
            "html_url": self.html_url,
        }


@dataclass
class GitHubPull:
    number: int
    title: str
    body: str
    head: str
    base: str
    html_url: str
    state: str = "open"
    edits: int = 0  # how many updates it received

    def to_api(self, owner: str) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "body": self.body,
            "state": self.state,
            "html_url": self.html_url,
            "head": {"ref": self.head, "label": f"{owner}:{self.head}"},
            "base": {"ref": self.base, "label": f"{owner}:{self.base}"},
        }


class GitHubStandIn(JsonServer):
    signature_header = "X-Hub-Signature-256"

    def __init__(
        self,
        *,
        token: str = "ghp_standin",
        repository: str = "acme/ops",
        webhook_secret: str = "github-webhook-secret",
        secondary: bool = False,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.token, self.repository, self.webhook_secret = token, repository, webhook_secret
        self.secondary = secondary
        self.webhook_url: str | None = None
        self.issues: dict[int, GitHubIssue] = {}
        self.pulls: dict[int, GitHubPull] = {}
        self.git_dir: Path | None = None  # the bare repository whose branches pull requests name
        self._next = 1
        repo = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        self.route("POST", repo + "/issues", self._create)
        self.route("GET", repo + "/issues", self._list)
        self.route("GET", repo + r"/issues/(?P<number>\d+)", self._get)
        self.route("PATCH", repo + r"/issues/(?P<number>\d+)", self._edit)
        self.route("POST", repo + "/pulls", self._create_pull)
        self.route("GET", repo + "/pulls", self._list_pulls)
        self.route("GET", repo + r"/pulls/(?P<number>\d+)", self._get_pull)
        self.route("PATCH", repo + r"/pulls/(?P<number>\d+)", self._edit_pull)

    def check_auth(self, headers: dict[str, str]) -> None:
        if headers.get("authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            raise TrackerError(401, {"message": "Bad credentials"})

    def rate_limit_reply(self) -> Reply:
        if self.secondary:
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            )
            return Reply(429, {"message": message}, {"retry-after": str(self.faults.retry_after)})
        reset = str(int(time.time()) + self.faults.retry_after)
        headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
        return Reply(403, {"message": "API rate limit exceeded for user ID 1."}, headers)

    def _repo(self, match: dict[str, Any]) -> None:
        if f"{match['owner']}/{match['name']}" != self.repository:
            raise TrackerError(404, {"message": "Not Found"})

    def _issue(self, match: dict[str, Any]) -> GitHubIssue:
        self._repo(match)
        issue = self.issues.get(int(match["number"]))
        if issue is None:
            raise TrackerError(404, {"message": "Not Found"})
        return issue

    @staticmethod
    def _invalid(field_name: str, code: str = "invalid") -> TrackerError:
        error = {"resource": "Issue", "field": field_name, "code": code}
        return TrackerError(422, {"message": "Validation Failed", "errors": [error]})

    def _create(self, match: dict[str, Any], _query: dict[str, str], body: Any, _h: dict[str, str]) -> Reply:
        self._repo(match)
        body = body or {}
        if not isinstance(body.get("title"), str) or not body["title"].strip():
            raise self._invalid("title", "missing_field")
        labels = body.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise self._invalid("labels")
        number, self._next = self._next, self._next + 1
        url = f"https://github.com/{self.repository}/issues/{number}"
        issue = GitHubIssue(number, body["title"], str(body.get("body") or ""), labels, url, history=["open"])
        self.issues[number] = issue
        self._notify("opened", issue)
        if self.faults.after_create is not None:
            self.faults.after_create()
        return Reply(201, issue.to_api())

    def _list(self, match: dict[str, Any], query: dict[str, str], _body: Any, _h: dict[str, str]) -> Reply:
        self._repo(match)
        wanted = [label for label in query.get("labels", "").split(",") if label]
        state = query.get("state", "open")
        found = [
            issue.to_api()
            for issue in sorted(self.issues.values(), key=lambda i: i.number, reverse=True)
            if all(label in issue.labels for label in wanted) and state in ("all", issue.state)
        ]
        return Reply(200, found[: int(query.get("per_page", "30"))])

    def _get(self, match: dict[str, Any], _query: dict[str, str], _body: Any, _h: dict[str, str]) -> Reply:
        return Reply(200, self._issue(match).to_api())

    def _edit(self, match: dict[str, Any], _query: dict[str, str], body: Any, _h: dict[str, str]) -> Reply:
        issue = self._issue(match)
        body = body or {}
        if "title" in body and (not isinstance(body["title"], str) or not body["title"].strip()):
            raise self._invalid("title")
        if body.get("state", issue.state) not in ("open", "closed"):
            raise self._invalid("state")
        if body.get("state_reason") not in STATE_REASONS:
            raise self._invalid("state_reason")
        issue.title = body.get("title", issue.title)
        issue.body = str(body.get("body", issue.body))
        action = "edited"
        if body.get("state", issue.state) != issue.state:
            self._set_state(issue, body["state"], body.get("state_reason"))
            action = "closed" if issue.state == "closed" else "reopened"
        self._notify(action, issue)
        return Reply(200, issue.to_api())

    # pull requests ----------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        return self.repository.split("/")[0]

    @staticmethod
    def _invalid_pull(field_name: str, code: str = "invalid", message: str | None = None) -> TrackerError:
        error: dict[str, Any] = {"resource": "PullRequest", "field": field_name, "code": code}
        if message is not None:
            error = {"resource": "PullRequest", "code": "custom", "message": message}
        return TrackerError(422, {"message": "Validation Failed", "errors": [error]})

    def _branch_exists(self, branch: str) -> bool:
        if self.git_dir is None:
            return True
        found = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.git_dir),
                "rev-parse",
                "--verify",
                "--quiet",
                f"refs/heads/{branch}",
            ],
            capture_output=True,
            check=False,
        )
        return found.returncode == 0

    def _pull(self, match: dict[str, Any]) -> GitHubPull:
        self._repo(match)
        pull = self.pulls.get(int(match["number"]))
        if pull is None:
            raise TrackerError(404, {"message": "Not Found"})
        return pull

    def _create_pull(self, match: dict[str, Any], _q: dict[str, str], body: Any, _h: dict[str, str]) -> Reply:
        self._repo(match)
        body = body or {}
        for name in ("title", "head", "base"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise self._invalid_pull(name, "missing_field")
        head = body["head"].split(":", 1)[-1]
        if not self._branch_exists(head):
            raise self._invalid_pull("head")
        if not self._branch_exists(body["base"]):
            raise self._invalid_pull("base")
        if any(p.state == "open" and p.head == head and p.base == body["base"] for p in self.pulls.values()):
            raise self._invalid_pull(
                "head", message=f"A pull request already exists for {self.owner}:{head}."
            )
        number, self._next = self._next, self._next + 1
        url = f"https://github.com/{self.repository}/pull/{number}"
        pull = GitHubPull(number, body["title"], str(body.get("body") or ""), head, body["base"], url)
        self.pulls[number] = pull
        return Reply(201, pull.to_api(self.owner))

    def _list_pulls(self, match: dict[str, Any], query: dict[str, str], _b: Any, _h: dict[str, str]) -> Reply:
        self._repo(match)
        state = query.get("state", "open")
        head = query.get("head")
        found = [
            pull.to_api(self.owner)
            for pull in sorted(self.pulls.values(), key=lambda p: p.number, reverse=True)
            if state in ("all", pull.state)
            and (head is None or head == f"{self.owner}:{pull.head}")
            and query.get("base", pull.base) == pull.base
        ]
        return Reply(200, found[: int(query.get("per_page", "30"))])

    def _get_pull(self, match: dict[str, Any], _q: dict[str, str], _b: Any, _h: dict[str, str]) -> Reply:
        return Reply(200, self._pull(match).to_api(self.owner))

    def _edit_pull(self, match: dict[str, Any], _q: dict[str, str], body: Any, _h: dict[str, str]) -> Reply:
        pull = self._pull(match)
        body = body or {}
        if "title" in body and (not isinstance(body["title"], str) or not body["title"].strip()):
            raise self._invalid_pull("title")
        if body.get("state", pull.state) not in ("open", "closed"):
            raise self._invalid_pull("state")
        pull.title = body.get("title", pull.title)
        pull.body = str(body.get("body", pull.body))
        pull.base = body.get("base", pull.base)
        pull.state = body.get("state", pull.state)
        pull.edits += 1
        return Reply(200, pull.to_api(self.owner))

    # what people do on GitHub ---------------------------------------------------------------

    def _set_state(self, issue: GitHubIssue, state: str, reason: str | None) -> None:
        issue.state = state
        issue.state_reason = reason or ("completed" if state == "closed" else "reopened")
        issue.history.append(state)

    def close(self, number: int) -> None:
        with self.lock:
            self._set_state(self.issues[number], "closed", "completed")
            self._notify("closed", self.issues[number])

    def reopen(self, number: int) -> None:
        with self.lock:
            self._set_state(self.issues[number], "open", "reopened")
            self._notify("reopened", self.issues[number])

    def delete(self, number: int) -> None:
        with self.lock:
            issue = self.issues.pop(number)
            self._notify("deleted", issue)

    def _notify(self, action: str, issue: GitHubIssue) -> None:
        payload = {
            "action": action,
            "issue": issue.to_api(),
            "repository": {"full_name": self.repository},
            "sender": {"login": "someone"},
        }
        headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4())}
        self.queue_webhook(self.webhook_url, payload, headers, self.webhook_secret)
