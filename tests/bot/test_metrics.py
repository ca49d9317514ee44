"""`/metrics` on a fixed data set: the text parses with Prometheus' own parser and every value equals
the hand-counted one, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.models import OutboxMessage, OutboxStatus
from bot.loop.metrics import BUCKETS, metrics_registry
from bot.slack.outbox import enqueue
from tests.factories import add_action_item, add_incident

AT = datetime(2026, 11, 20, 9, tzinfo=UTC)
# 00:30 on Nov 24 in Berlin, still Nov 23 in UTC: an item due Nov 23 is overdue in Berlin only.
NOW = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def fixed_data_set(session: Session) -> None:
    a = add_incident(session, at=AT, service="checkout", ack=120, response=300, resolve=1800, document=3600)
    add_incident(session, at=AT, service="checkout", ack=60, response=1200, resolve=3000)
    c = add_incident(
        session, at=AT, service="payments", urgency="low", ack=240, response=900, resolve=900, document=7200
    )
    add_incident(session, at=AT, service="payments", urgency=None)
    add_incident(session, at=AT, service=None, ack=30, response=30, resolve=60)
    add_action_item(session, a, due=date(2026, 11, 23))  # overdue in Berlin, not in UTC
    add_action_item(session, a, due=date(2026, 11, 22))  # overdue everywhere
    add_action_item(session, a, due=date(2026, 11, 24))  # due today in Berlin: not overdue
    add_action_item(session, a, due=None)
    add_action_item(session, a, due=date(2026, 11, 1), completed_at=AT)  # done: neither
    add_action_item(session, c, due=date(2026, 12, 1))
    for index, status in enumerate([OutboxStatus.PENDING, OutboxStatus.PENDING, OutboxStatus.SENT, "parked"]):
        enqueue(session, key=f"k{index}", channel="C0X", at=AT, text="hello")
        row = session.exec(select(OutboxMessage).where(OutboxMessage.key == f"k{index}")).one()
        row.status = status
    session.commit()


def scrape(engine: Engine, tz: ZoneInfo = BERLIN) -> tuple[str, Samples]:
    text = generate_latest(metrics_registry(engine=engine, tz=tz, now=lambda: NOW)).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_incidents_by_service_and_urgency(engine: Engine, session: Session) -> None:
    fixed_data_set(session)
    _, samples = scrape(engine)
    counted = {
        tuple(sorted(dict(labels).items())): v
        for (name, labels), v in samples.items()
        if name == "postmortem_bot_incidents_total"
    }
    assert counted == {
        (("service", "checkout"), ("urgency", "high")): 2,
        (("service", "payments"), ("urgency", "low")): 1,
        (("service", "payments"), ("urgency", "unknown")): 1,
        (("service", "(no service)"), ("urgency", "high")): 1,
    }


def test_histograms_count_each_bucket_cumulatively_with_900_s_inclusive(
    engine: Engine, session: Session
) -> None:
    fixed_data_set(session)
    _, samples = scrape(engine)
    assert 900 in BUCKETS
    name = "postmortem_bot_time_to_first_response_seconds"
    # checkout: 300 and 1200 s; payments: 900 s (on the boundary: counts as within 15 minutes).
    checkout = {le: value(samples, f"{name}_bucket", service="checkout", le=le) for le in ("300.0", "900.0")}
    assert checkout == {"300.0": 1, "900.0": 1}
    assert value(samples, f"{name}_bucket", service="checkout", le="1800.0") == 2
    assert value(samples, f"{name}_bucket", service="checkout", le="+Inf") == 2
    assert value(samples, f"{name}_count", service="checkout") == 2
    assert value(samples, f"{name}_sum", service="checkout") == 1500
    assert value(samples, f"{name}_bucket", service="payments", le="600.0") == 0
    assert value(samples, f"{name}_bucket", service="payments", le="900.0") == 1
    # The payments incident nobody answered is in no bucket and not in the count.
    assert value(samples, f"{name}_count", service="payments") == 1
    assert value(samples, f"{name}_bucket", service="(no service)", le="60.0") == 1

    resolve = "postmortem_bot_time_to_resolve_seconds"
    assert value(samples, f"{resolve}_sum", service="checkout") == 4800
    assert value(samples, f"{resolve}_bucket", service="checkout", le="1800.0") == 1
    assert value(samples, f"{resolve}_bucket", service="checkout", le="3600.0") == 2
    ack = "postmortem_bot_time_to_acknowledge_seconds"
    assert (
        value(samples, f"{ack}_count", service="checkout"),
        value(samples, f"{ack}_sum", service="checkout"),
    ) == (
        2,
        180,
    )
    doc = "postmortem_bot_documentation_latency_seconds"
    assert value(samples, f"{doc}_count", service="checkout") == 1
    assert value(samples, f"{doc}_bucket", service="payments", le="3600.0") == 0
    assert value(samples, f"{doc}_bucket", service="payments", le="7200.0") == 1
    assert value(samples, f"{doc}_count", service="(no service)") == 0


def test_action_items_overdue_by_the_local_day_and_outbox_depth(engine: Engine, session: Session) -> None:
    fixed_data_set(session)
    _, samples = scrape(engine)
    assert value(samples, "postmortem_bot_action_items_open") == 5
    assert value(samples, "postmortem_bot_action_items_overdue") == 2
    _, in_utc = scrape(engine, tz=ZoneInfo("UTC"))
    assert value(in_utc, "postmortem_bot_action_items_overdue") == 1
    depth = {status: value(samples, "postmortem_bot_outbox_depth", status=status) for status in OutboxStatus}
    assert depth == {"pending": 2, "sent": 1, "parked": 1, "dropped": 0}
    assert value(samples, "postmortem_bot_outbox_oldest_pending_seconds") == (NOW - AT).total_seconds()


def test_an_empty_database_still_exports_every_family(engine: Engine) -> None:
    text, samples = scrape(engine)
    assert value(samples, "postmortem_bot_action_items_open") == 0
    assert value(samples, "postmortem_bot_outbox_oldest_pending_seconds") == 0
    for kind in ("time_to_acknowledge", "time_to_first_response", "time_to_resolve", "documentation_latency"):
        assert f"# TYPE postmortem_bot_{kind}_seconds histogram" in text


def test_a_scrape_reads_the_database_now_not_a_count_kept_in_the_process(
    engine: Engine, session: Session
) -> None:
    registry = metrics_registry(engine=engine, tz=BERLIN, now=lambda: NOW)
    before = generate_latest(registry).decode()
    assert "postmortem_bot_incidents_total{" not in before
    add_incident(session, at=AT, service="search")
    session.commit()
    after = generate_latest(registry).decode()
    assert 'postmortem_bot_incidents_total{service="search",urgency="high"} 1.0' in after
