"""GitHub Issues (REST API, a token), and the GitHub REST client it is built on.

`GitHubClient` is the reusable part (pull requests of the docs repository will use it too): the
authenticated calls to one repository, with GitHub's answers classified (primary and secondary rate
limits on 403/429 with Retry-After or x-ratelimit-*, 5xx retried, other 4xx refused). The item's
idempotency key is a hidden marker in the issue's body; after a crash the newest issues with the
bot's label are read (a plain list, consistent at once, unlike the search index) to find it.
"""

from __future__ import annotations

from typing import Any

from bot.trackers.base import IssueContent, IssueGone, RemoteIssue
from bot.trackers.http import HttpError, JsonHttp, classified

LABEL = "postmortem"
API_VERSION = "2022-11-28"
TITLE_LIMIT = 256


class GitHubClient:
    def __init__(self, *, api_url: str, token: str, repository: str, timeout: float = 10.0) -> None:
        self.repository = repository
        self._http = JsonHttp(
            api_url,
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
            timeout=timeout,
        )

    def call(self, method: str, path: str, *, body: Any = None, query: dict[str, str] | None = None) -> Any:
        """`path` is relative to the repository ("/issues/7"). Raises TrackerRetry or TrackerRefused, or
        IssueGone for a 404/410 on an issue path."""
        full = f"/repos/{self.repository}{path}"
        try:
            return self._http.call(method, full, body=body, query=query).body
        except HttpError as exc:
            if path.startswith("/issues/") and exc.answer.status in (404, 410):
                raise IssueGone(f"GitHub issue {path.removeprefix('/issues/')} not found") from None
            raise classified(exc, what=f"GitHub {method} {full}") from None


def marker(ref: str) -> str:
    return f"<!-- postmortem-bot:{ref} -->"


class GitHubTracker:
    name = "github"

    def __init__(self, client: GitHubClient) -> None:
        self._client = client

    @staticmethod
    def _remote(issue: dict[str, Any]) -> RemoteIssue:
        number = str(issue["number"])
        return RemoteIssue(number, f"#{number}", str(issue["html_url"]), issue.get("state") == "closed")

    @staticmethod
    def _fields(content: IssueContent) -> dict[str, Any]:
        due = f"\n\nDue: {content.due_date.isoformat()}" if content.due_date else ""
        return {
            "title": " ".join(content.title.split())[:TITLE_LIMIT],
            "body": f"{content.description}{due}\n\n{marker(content.ref)}",
        }

    def find(self, ref: str) -> RemoteIssue | None:
        query = {"labels": LABEL, "state": "all", "sort": "created", "direction": "desc", "per_page": "100"}
        for issue in self._client.call("GET", "/issues", query=query) or []:
            if marker(ref) in (issue.get("body") or ""):
                return self._remote(issue)
        return None

    def create(self, content: IssueContent, *, done: bool) -> RemoteIssue:
        created = self._remote(
            self._client.call("POST", "/issues", body={**self._fields(content), "labels": [LABEL]})
        )
        return self.set_done(created.issue_id, True) if done else created

    def update(self, issue_id: str, content: IssueContent) -> None:
        self._client.call("PATCH", f"/issues/{issue_id}", body=self._fields(content))

    def get(self, issue_id: str) -> RemoteIssue:
        return self._remote(self._client.call("GET", f"/issues/{issue_id}"))

    def set_done(self, issue_id: str, done: bool) -> RemoteIssue:
        body = {"state": "closed", "state_reason": "completed"} if done else {"state": "open"}
        return self._remote(self._client.call("PATCH", f"/issues/{issue_id}", body=body))
