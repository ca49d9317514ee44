"""`GET /metrics` over HTTP on the served bot: Prometheus' content type, parsable text, the database's
figures once the periodic refresh has read them."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from bot.core.clock import utcnow
from bot.core.db import make_engine
from bot.devtools.stack import LocalStack
from tests.factories import add_incident


@pytest.fixture
def stack(database_url: str) -> Iterator[LocalStack]:
    with LocalStack(database_url, metrics_refresh_seconds=0.2) as running:
        yield running


def scrape(stack: LocalStack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{stack.bot_url}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST  # Prometheus' text format
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_route_serves_the_database_figures_after_a_refresh(stack: LocalStack) -> None:
    assert ("postmortem_bot_kpi_incidents", (("service", ""), ("window", "7d"))) in scrape(stack)
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        add_incident(session, at=utcnow() - timedelta(hours=1), service="search", response=840)
        session.commit()
    engine.dispose()
    within = ("postmortem_bot_kpi_within_response_target_ratio", (("service", "search"), ("window", "7d")))
    deadline = time.monotonic() + 30
    while within not in (samples := scrape(stack)):
        assert time.monotonic() < deadline, "the refresh never showed the new incident"
        time.sleep(0.1)
    assert samples[within] == 1  # 840 s is within the 15-minute target
    assert samples[("postmortem_bot_incidents_total", (("service", "search"), ("urgency", "high")))] == 1
