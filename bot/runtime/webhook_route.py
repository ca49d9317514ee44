"""`POST /webhooks/pagerduty`: PagerDuty Webhooks V3.

PagerDuty wants a 2xx within 5 s, retries 5xx/429/time-outs for up to 48 h and drops other 4xx (three
drops in a row disable the subscription for 24 h), so 400 is kept for bodies that truly are bad.

The route checks and stores; it does not process. A delivery is answered 202 once it is committed (by
group commit, bot/runtime/ingest.py), 200 when its event id was stored before; the incident, its timeline and
its Slack messages follow from the delivery processor (bot/runtime/processor.py) and the outbox.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.core.config import Settings
from bot.domain.deliveries import RawDelivery
from bot.domain.pagerduty import SOURCE, MalformedDelivery, parse_event, signature_matches
from bot.runtime.ingest import IngestWriter, NotStored
from bot.runtime.web import Response, Route, json_response

log = logging.getLogger(__name__)
PATH = "/webhooks/pagerduty"


def pagerduty_webhook(settings: Settings, ingest: IngestWriter) -> Route:
    def handle_pagerduty_webhook(environ: dict[str, Any], body: bytes) -> Response:
        secrets = settings.pagerduty_webhook_secrets
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
        delivery = RawDelivery(SOURCE, event.id, event.event_type, body.decode("utf-8"))
        try:
            # Blocks until the delivery's batch is committed: nothing is answered 2xx before it is stored.
            new = ingest.store(delivery)
        except NotStored as exc:
            # 503: PagerDuty retries, and the retry is stored (or found stored) then.
            log.warning("PagerDuty delivery %s not stored: %s", event.id, exc)
            return json_response(503, {"error": "the delivery could not be stored; retry"})
        if not new:
            return json_response(200, {"status": "duplicate", "event_id": event.id})
        return json_response(202, {"status": "accepted", "event_id": event.id})

    return handle_pagerduty_webhook
