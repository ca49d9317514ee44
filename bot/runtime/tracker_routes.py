"""`POST /webhooks/jira` and `POST /webhooks/github`: changes made in the tracker come back.

Both sign the raw body with HMAC-SHA256 and the webhook's secret: Jira in `X-Hub-Signature: sha256=<hex>`,
GitHub in `X-Hub-Signature-256: sha256=<hex>`. Answers follow the PagerDuty route: 401 for a bad or missing
signature, 400 for a signed body that is not what the tracker sends, 503 while no secret is configured
(both trackers retry), 200 otherwise (`applied`, `duplicate` for a delivery applied before, `ignored` or
`unchanged`). A delivery is recognised by Jira's `X-Atlassian-Webhook-Identifier` (the same on every
retry) and GitHub's `X-GitHub-Delivery`; the change it carries is applied in the same transaction that
archives it (bot/flows/trackers.py), so it is applied once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from bot.core.clock import utcnow
from bot.domain.deliveries import RawDelivery
from bot.flows.context import Runtime
from bot.flows.trackers import issue_changed
from bot.runtime.web import Response, Route, json_response

JIRA_PATH = "/webhooks/jira"
GITHUB_PATH = "/webhooks/github"


def signature_valid(body: bytes, header: str | None, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), (header or "").strip().encode("utf-8", errors="replace"))


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def _checked(
    environ: dict[str, Any], body: bytes, *, secret: str | None, header: str, name: str
) -> dict[str, Any] | Response:
    if not secret:
        return json_response(503, {"error": f"{name} is not set"})
    if not signature_valid(body, environ.get(header), secret):
        return json_response(401, {"error": "missing or invalid signature"})
    payload = _json_object(body)
    if payload is None:
        return json_response(400, {"error": "the body is not a JSON object"})
    return payload


def _issue_id(issue: object, field: str) -> str | None:
    value = issue.get(field) if isinstance(issue, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def _status_category(issue: object) -> str | None:
    """issue.fields.status.statusCategory.key ("new", "indeterminate" or "done"), or None."""
    value: object = issue
    for field in ("fields", "status", "statusCategory", "key"):
        value = value.get(field) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def _status_changed(changelog: object) -> bool:
    """Whether Jira's changelog of this update moves the issue's status."""
    entries = changelog.get("items") if isinstance(changelog, dict) else None
    return isinstance(entries, list) and any(
        isinstance(entry, dict) and entry.get("field") == "status" for entry in entries
    )


def jira_webhook(runtime: Runtime) -> Route:
    def route(environ: dict[str, Any], body: bytes) -> Response:
        checked = _checked(
            environ,
            body,
            secret=runtime.settings.jira_webhook_secret,
            header="HTTP_X_HUB_SIGNATURE",
            name="JIRA_WEBHOOK_SECRET",
        )
        if isinstance(checked, Response):
            return checked
        event = checked.get("webhookEvent")
        if event not in ("jira:issue_updated", "jira:issue_deleted"):
            return json_response(200, {"status": "ignored"})
        issue = checked.get("issue")
        issue_id = _issue_id(issue, "id")
        if issue_id is None:
            return json_response(400, {"error": f"{event} without issue.id"})
        if event == "jira:issue_updated" and not _status_changed(checked.get("changelog")):
            # An edit of other fields (the bot's own, as often as not): its status says nothing new, and
            # a late delivery of it must not undo a transition made since.
            return json_response(200, {"status": "ignored"})
        category = _status_category(issue)
        if event == "jira:issue_updated" and category is None:
            return json_response(400, {"error": f"{event} without issue.fields.status.statusCategory.key"})
        delivery_id = environ.get("HTTP_X_ATLASSIAN_WEBHOOK_IDENTIFIER") or hashlib.sha256(body).hexdigest()
        outcome = issue_changed(
            runtime,
            tracker="jira",
            issue_id=issue_id,
            done=None if event == "jira:issue_deleted" else category == "done",
            at=utcnow(),
            delivery=RawDelivery("jira", delivery_id, event, body.decode("utf-8")),
        )
        return json_response(200, {"status": outcome})

    return route


_GITHUB_ACTIONS = {"closed": True, "reopened": False, "deleted": None}


def github_webhook(runtime: Runtime) -> Route:
    def route(environ: dict[str, Any], body: bytes) -> Response:
        checked = _checked(
            environ,
            body,
            secret=runtime.settings.github_webhook_secret,
            header="HTTP_X_HUB_SIGNATURE_256",
            name="GITHUB_WEBHOOK_SECRET",
        )
        if isinstance(checked, Response):
            return checked
        delivery_id = environ.get("HTTP_X_GITHUB_DELIVERY")
        if not delivery_id:
            return json_response(400, {"error": "missing X-GitHub-Delivery"})
        action = checked.get("action")
        repository = checked.get("repository")
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        if environ.get("HTTP_X_GITHUB_EVENT") != "issues" or action not in _GITHUB_ACTIONS:
            return json_response(200, {"status": "ignored"})
        if not isinstance(full_name, str):
            return json_response(400, {"error": "issues event without repository.full_name"})
        if full_name != runtime.settings.github_repository:  # another repository's webhook, sent here
            return json_response(200, {"status": "ignored"})
        number = _issue_id(checked.get("issue"), "number")
        if number is None:
            return json_response(400, {"error": "issues event without issue.number"})
        outcome = issue_changed(
            runtime,
            tracker="github",
            issue_id=number,
            done=_GITHUB_ACTIONS[action],
            at=utcnow(),
            delivery=RawDelivery("github", delivery_id, f"issues.{action}", body.decode("utf-8")),
        )
        return json_response(200, {"status": outcome})

    return route
