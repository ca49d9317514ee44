"""The PagerDuty REST API calls the bot makes: a user's e-mail (webhooks carry none), to find the Slack
user to invite; a service's owner (its first team, else its escalation policy), to name it on the card.
Thin HTTP over urllib: two GETs do not need a client library (PagerDuty's own `pagerduty`/`pdpyras` would
bring `requests` and its session machinery for them).

As PagerDuty documents its REST API v2: `Authorization: Token token=<key>`, `Accept:
application/vnd.pagerduty+json;version=2`; 401 for a bad key, 404 for an unknown user or service, 429 when
rate limited; errors are a JSON `error` object. A 404 means "no such user or service" (None); anything else
that is not 200 raises, and the caller retries with back-off (a 429 after its Retry-After)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from bot.core.config import Settings
from bot.domain.owners import Owner, OwnerKind

ACCEPT = "application/vnd.pagerduty+json;version=2"


class PagerDutyApiError(RuntimeError):
    """PagerDuty answered something other than the resource or 404 (a bad key, rate limiting, an outage)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        # A 429's Retry-After, in seconds (None for any other error).
        self.retry_after = retry_after


class PagerDutyApi:
    def __init__(self, *, url: str, token: str, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def user_email(self, user_id: str) -> str | None:
        """The e-mail of PagerDuty user `user_id`, or None when PagerDuty has no such user."""
        user = self._get("user", f"/users/{quote(user_id, safe='')}")
        email = user.get("email") if user else None
        return email if isinstance(email, str) and email else None

    def service_owner(self, service_id: str) -> Owner | None:
        """The owner of service `service_id`: its first team, else its escalation policy (expanded with
        `include[]`, so the names are the objects' own); None when PagerDuty names neither or has no such
        service."""
        service = self._get(
            "service",
            f"/services/{quote(service_id, safe='')}?include[]=teams&include[]=escalation_policies",
        )
        if service is None:
            return None
        teams = [team for team in service.get("teams") or [] if isinstance(team, dict)]
        if teams:
            return _owner(OwnerKind.TEAM, teams[0])
        policy = service.get("escalation_policy")
        return _owner(OwnerKind.ESCALATION_POLICY, policy) if isinstance(policy, dict) else None

    def _get(self, kind: str, path: str) -> dict[str, Any] | None:
        """The `kind` object PagerDuty answers for `path`; None for a 404."""
        request = urllib.request.Request(
            f"{self._url}{path}",
            headers={"Authorization": f"Token token={self._token}", "Accept": ACCEPT},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                found = json.loads(response.read()).get(kind)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            after = exc.headers.get("Retry-After") if exc.code == 429 else None
            raise PagerDutyApiError(
                f"PagerDuty answered {exc.code} for {path.split('?')[0]}: {_message(exc)}",
                retry_after=float(after) if after and after.isdigit() else None,
            ) from None
        return found if isinstance(found, dict) else {}


def _owner(kind: OwnerKind, found: dict[str, Any]) -> Owner | None:
    name = found.get("name") or found.get("summary")
    if not isinstance(name, str) or not name:
        return None
    url = found.get("html_url")
    return Owner(kind, name, url if isinstance(url, str) else None)


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str((json.loads(error.read()).get("error") or {}).get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def pagerduty_api_from(settings: Settings) -> PagerDutyApi | None:
    if not settings.pagerduty_api_token:
        return None
    return PagerDutyApi(
        url=settings.pagerduty_api_url,
        token=settings.pagerduty_api_token,
        timeout=settings.slack_api_timeout_seconds,
    )
