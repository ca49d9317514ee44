"""The one PagerDuty REST API call the bot makes: a user's e-mail (webhooks carry none), to find the Slack
user to invite. Thin HTTP over urllib: one GET does not need a client library (PagerDuty's own
`pagerduty`/`pdpyras` would bring `requests` and its session machinery for this one call).

As PagerDuty documents its REST API v2: `Authorization: Token token=<key>`, `Accept:
application/vnd.pagerduty+json;version=2`; 401 for a bad key, 404 for an unknown user, 429 when rate
limited. A 404 means "no such person" (None); anything else that is not 200 raises, and the outbox row
that asked is retried with back-off (then parked, and /healthz says so)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote

ACCEPT = "application/vnd.pagerduty+json;version=2"


class PagerDutyApiError(RuntimeError):
    """PagerDuty answered something other than the user or 404 (a bad key, rate limiting, an outage)."""


class PagerDutyApi:
    def __init__(self, *, url: str, token: str, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def user_email(self, user_id: str) -> str | None:
        """The e-mail of PagerDuty user `user_id`, or None when PagerDuty has no such user."""
        request = urllib.request.Request(
            f"{self._url}/users/{quote(user_id, safe='')}",
            headers={"Authorization": f"Token token={self._token}", "Accept": ACCEPT},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                user = json.loads(response.read()).get("user") or {}
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise PagerDutyApiError(
                f"PagerDuty answered {exc.code} for user {user_id}: {_message(exc)}"
            ) from None
        email = user.get("email")
        return email if isinstance(email, str) and email else None


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str((json.loads(error.read()).get("error") or {}).get("message") or error.reason)
    except ValueError:
        return str(error.reason)
