"""PostgreSQL restarting mid-load (a relay in front of it is cut, then restored): every webhook answered
2xx is stored, the others get 503 (PagerDuty retries them), /healthz and /readyz say the database is down,
and the bot recovers by itself once the database is back, without a restart."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, func, select

from bot.core.db import make_engine
from bot.core.models import InboundDelivery, Incident
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack
from tests.conftest import _truncate_postgres
from tests.faults.ledger import Figures, count_messages, outbox_settled, pagerduty_body, post_pagerduty
from tests.faults.relay import TcpRelay
from tests.faults.test_slack_outages import get_json

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

DELIVERIES = 120


@pytest.fixture
def relayed_url(postgres_url: str) -> Iterator[tuple[str, TcpRelay]]:
    _truncate_postgres(postgres_url)
    url = make_url(postgres_url)
    relay = TcpRelay((url.host or "127.0.0.1", url.port or 5432)).start()
    yield url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False), relay
    relay.stop()


def test_postgresql_restarted_mid_load_loses_nothing_answered_and_recovers_without_a_restart(
    relayed_url: tuple[str, TcpRelay],
) -> None:
    database_url, relay = relayed_url
    figures, answers = Figures(), Counter[int]()
    acknowledged: set[int] = set()
    lock = threading.Lock()
    cut_at = threading.Event()
    with LocalStack(database_url, outbox_claim_seconds=2, outbox_max_backoff_seconds=1) as stack:

        def deliver(n: int) -> None:
            """PagerDuty: one delivery, retried until it gets a 2xx (a minute at most)."""
            body = pagerduty_body(f"QPG{n:03d}", 700 + n, "triggered", minutes=0)
            give_up = time.monotonic() + 60
            while time.monotonic() < give_up:
                status = post_pagerduty(stack.bot_url, body, PAGERDUTY_SECRET)
                with lock:
                    figures.sent += 1
                    answers[status] += 1
                    if 200 <= status < 300:
                        acknowledged.add(n)
                        if len(acknowledged) == DELIVERIES // 3:
                            cut_at.set()
                        return
                assert status == 503, status  # never a 5xx other than "not stored, retry"
                time.sleep(0.05)  # PagerDuty's retry, compressed
            raise AssertionError(f"delivery {n} was never stored: the bot did not recover")

        with ThreadPoolExecutor(4) as pool:
            sending = pool.map(deliver, range(DELIVERIES))
            cut_at.wait(60)
            relay.cut()
            stack.sandbox.wait_for(lambda: answers[503] >= 10, timeout=60, message="no 503 while cut")
            health, ready = get_json(stack.bot_url + "/healthz"), get_json(stack.bot_url + "/readyz")
            relay.restore()
            list(sending)
        figures.acknowledged = len(acknowledged)
        assert health[0] == 503 and health[1]["status"] == "down", health
        assert health[1]["database"]["status"] == "unreachable", health
        assert ready[0] == 503 and ready[1]["ready"] is False, ready
        assert get_json(stack.bot_url + "/readyz") == (200, {"ready": True})
        stack.sandbox.wait_for(lambda: outbox_settled(database_url), timeout=90, message="never settled")

        engine = make_engine(database_url)
        with Session(engine) as session:
            stored = set(session.exec(select(InboundDelivery.delivery_id)).all())
            incidents = session.exec(
                select(func.count(), func.count(col(Incident.channel_id))).select_from(Incident)
            ).one()
        engine.dispose()
        figures.stored = len(stored)
        figures.lost = len({f"EVQPG{n:03d}triggered" for n in acknowledged} - stored)
        assert incidents == (DELIVERIES, DELIVERIES)
        count_messages(stack.sandbox, database_url, figures)
    print(f"\n  answers: {dict(answers)}; connections refused while cut: {relay.refused}")
    figures.report("postgresql restarted mid-load")
