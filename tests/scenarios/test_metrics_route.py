"""`GET /metrics` over HTTP on the served bot: Prometheus' content type, parsable text, database figures."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from bot.core.db import make_engine
from bot.devtools.stack import LocalStack
from tests.factories import add_incident


def test_metrics_route_serves_the_database_figures(stack: LocalStack) -> None:
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        add_incident(session, at=datetime(2026, 11, 20, tzinfo=UTC), service="search", response=840)
        session.commit()
    engine.dispose()
    with urllib.request.urlopen(f"{stack.bot_url}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST  # Prometheus' text format
        text = answer.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    bucket = "postmortem_bot_time_to_first_response_seconds_bucket"
    assert samples[(bucket, (("le", "900.0"), ("service", "search")))] == 1
    assert samples[(bucket, (("le", "600.0"), ("service", "search")))] == 0
    assert samples[("postmortem_bot_incidents_total", (("service", "search"), ("urgency", "high")))] == 1
