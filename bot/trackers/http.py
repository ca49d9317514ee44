"""One small JSON-over-HTTPS client for both trackers (the standard library's urllib).

Why not jira / PyGithub: the bot makes six kinds of calls, and the outbox discipline needs every answer's
status and headers (429, Retry-After, x-ratelimit-*) to decide retry or park, which those libraries hide
behind their own retries and exceptions. No new dependency, one place that classifies answers.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

from bot.trackers.base import TrackerRefused, TrackerRetry

# GitHub: a secondary rate limit with neither Retry-After nor x-ratelimit-reset means "wait a minute".
DEFAULT_RATE_LIMIT_WAIT = 60.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the decoded JSON, or None for an empty body
    headers: Message


class HttpError(Exception):
    """A non-2xx answer, kept whole so each tracker decides what it means."""

    def __init__(self, method: str, path: str, answer: Answer) -> None:
        super().__init__(f"{method} {path}: HTTP {answer.status} {_brief(answer.body)}")
        self.answer = answer


def _brief(body: Any) -> str:
    return json.dumps(body)[:300] if body is not None else ""


class JsonHttp:
    def __init__(self, base_url: str, headers: Mapping[str, str], *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": "postmortem-bot", **headers}
        self._timeout = timeout

    def call(
        self, method: str, path: str, *, body: Any = None, query: Mapping[str, str] | None = None
    ) -> Answer:
        """One request. Raises HttpError for a non-2xx answer, TrackerRetry when there was no answer."""
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = Answer(response.status, _decode(response.read()), response.headers)
        except urllib.error.HTTPError as exc:
            answer = Answer(exc.code, _decode(exc.read()), exc.headers)
            raise HttpError(method, path, answer) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise TrackerRetry(f"{method} {path}: {exc}") from None
        return answer


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"text": raw[:300].decode("utf-8", errors="replace")}


def rate_limit_wait(answer: Answer, *, now: float | None = None) -> float | None:
    """Seconds to wait when the answer says "slow down", else None. Retry-After (seconds) first; then
    GitHub's x-ratelimit-remaining: 0 with x-ratelimit-reset (epoch seconds); a 429 without either, or a
    403 whose message speaks of a rate limit (GitHub's secondary limit), waits a minute."""
    headers = answer.headers
    retry_after = (headers.get("Retry-After") or "").strip()
    if retry_after.isdigit():
        return float(retry_after)
    reset = (headers.get("x-ratelimit-reset") or "").strip()
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(1.0, float(reset) - (time.time() if now is None else now))
    if answer.status == 429 or (answer.status == 403 and "rate limit" in _brief(answer.body).lower()):
        return DEFAULT_RATE_LIMIT_WAIT
    return None


def classified(error: HttpError, *, what: str) -> Exception:
    """The exception the worker acts on for an answer that means the same on both trackers: slow down or
    down (retry), or anything else 4xx (refused: parked with the tracker's own message)."""
    answer = error.answer
    wait = rate_limit_wait(answer)
    if wait is not None:
        return TrackerRetry(f"{what}: rate-limited (HTTP {answer.status})", after=wait)
    if answer.status >= 500 or answer.status == 408:
        return TrackerRetry(f"{what}: HTTP {answer.status}")
    return TrackerRefused(f"{what}: HTTP {answer.status} {_brief(answer.body)}")
