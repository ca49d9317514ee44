"""`POST /webhooks/pagerduty`: PagerDuty Webhooks V3.

PagerDuty wants a 2xx within 5 s, retries 5xx/429/time-outs for up to 48 h and drops other 4xx (three
drops in a row disable the subscription for 24 h), so 400 is kept for bodies that truly are bad. The
route only touches the database; everything Slack-bound goes through the outbox.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.app import Runtime
from bot.clock import utcnow
from bot.db import session_scope
from bot.pagerduty import (
    MalformedDelivery,
    Outcome,
    parse_event,
    receive_event,
    signature_matches,
)
from bot.web import Response, Route, Router, json_response

log = logging.getLogger(__name__)
PATH = "/webhooks/pagerduty"


def pagerduty_webhook(runtime: Runtime) -> Route:
    def handle_pagerduty_webhook(environ: dict[str, Any], body: bytes) -> Response:
        secrets = runtime.settings.pagerduty_webhook_secrets
        if not secrets:
            # 503, not 401: PagerDuty retries it, so deliveries wait for the setting instead of being lost.
            log.error("PAGERDUTY_WEBHOOK_SECRETS is not set: PagerDuty deliveries are refused (503)")
            return json_response(503, {"error": "webhook secrets are not configured"})
        if not signature_matches(body, environ.get("HTTP_X_PAGERDUTY_SIGNATURE"), secrets):
            return json_response(401, {"error": "missing or invalid X-PagerDuty-Signature"})
        try:
            event = parse_event(body)
        except MalformedDelivery as exc:
            return json_response(400, {"error": exc.reason})
        now = utcnow()
        # One transaction; processing runs in a savepoint, so a failure still commits the raw delivery
        # (PagerDuty then retries, and the unprocessed archive row is processed again).
        with session_scope(runtime.engine) as session:
            outcome = receive_event(
                session=session, event=event, body=body, settings=runtime.settings, at=now
            )
        if outcome == Outcome.PROCESSED:
            runtime.outbox.wake()
        status = 200 if outcome == Outcome.DUPLICATE else 202
        return json_response(status, {"status": outcome, "event_id": event.id})

    return handle_pagerduty_webhook


def register(router: Router, runtime: Runtime) -> None:
    router.add("POST", PATH, pagerduty_webhook(runtime))
