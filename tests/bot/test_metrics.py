"""`/metrics` on a fixed data set: the text parses with Prometheus' own parser, every value equals the
hand-counted one and the one `compute_kpis` (the `kpis` command) gives, on SQLite and PostgreSQL; a scrape
serves the last refresh and never queries the database."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.config import load_settings
from bot.core.models import OutboxMessage, OutboxStatus
from bot.loop.kpis import compute_kpis
from bot.loop.metrics import KPI_METRICS, MetricsSnapshot, window_bounds
from bot.slack.outbox import enqueue
from tests.factories import add_action_item, add_incident
from tests.prometheus import debian_binary

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
    settings = load_settings(timezone=str(tz))
    snapshot = MetricsSnapshot(engine=engine, settings=settings, now=lambda: NOW)
    text = snapshot.exposition().decode()
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


def test_kpi_gauges_are_the_kpis_of_each_local_window(engine: Engine, session: Session) -> None:
    fixed_data_set(session)
    _, samples = scrape(engine)
    # NOW is 00:30 on Nov 24 in Berlin: "7d" is Nov 18 to the end of Nov 24, local days.
    since, until = window_bounds(NOW, BERLIN, 7)
    assert (since, until) == (datetime(2026, 11, 17, 23, tzinfo=UTC), datetime(2026, 11, 24, 23, tzinfo=UTC))
    assert (
        value(samples, "postmortem_bot_kpi_window_start_timestamp_seconds", window="7d") == since.timestamp()
    )
    report = compute_kpis(session=session, since=since, until=until, response_target_minutes=15, tz=BERLIN)
    for service, kpis in {"": report.overall, **report.by_service}.items():
        for attribute, (name, _) in KPI_METRICS.items():
            expected = getattr(kpis, attribute)
            key = (f"postmortem_bot_{name}", frozenset({"window": "7d", "service": service}.items()))
            assert samples.get(key) == expected, (service, attribute)
    assert value(samples, "postmortem_bot_kpi_incidents", window="7d", service="") == 5
    assert (
        value(samples, "postmortem_bot_kpi_mean_time_to_resolve_seconds", window="7d", service="checkout")
        == 2400
    )
    assert value(samples, "postmortem_bot_kpi_within_response_target_ratio", window="7d", service="") == 3 / 5
    # AT (Nov 20) is outside "1d" (Nov 24): no incidents, and no sample where there is no data.
    assert value(samples, "postmortem_bot_kpi_incidents", window="1d", service="") == 0
    assert (
        "postmortem_bot_kpi_mean_time_to_resolve_seconds",
        frozenset({"window": "1d", "service": ""}.items()),
    ) not in samples
    assert value(samples, "postmortem_bot_response_target_seconds") == 900


def test_windows_are_local_days_across_daylight_saving() -> None:
    # Berlin leaves summer time on Oct 25, 2026: the 7 local days to the end of Oct 28 are 169 hours.
    now = datetime(2026, 10, 28, 12, tzinfo=UTC)
    since, until = window_bounds(now, BERLIN, 7)
    assert since == datetime(2026, 10, 21, 22, tzinfo=UTC) and until == datetime(2026, 10, 28, 23, tzinfo=UTC)


def test_action_items_overdue_by_the_local_day_and_outbox_depth(engine: Engine, session: Session) -> None:
    fixed_data_set(session)
    _, samples = scrape(engine)
    assert value(samples, "postmortem_bot_action_items_open") == 5
    assert value(samples, "postmortem_bot_action_items_overdue") == 2
    _, in_utc = scrape(engine, tz=ZoneInfo("UTC"))
    assert value(in_utc, "postmortem_bot_action_items_overdue") == 1
    # Sent rows are history, not depth.
    depth = {
        (dict(labels)["status"]): v
        for (name, labels), v in samples.items()
        if name == "postmortem_bot_outbox_depth"
    }
    assert depth == {"pending": 2, "parked": 1}  # sent and dropped rows are history
    assert value(samples, "postmortem_bot_outbox_oldest_pending_seconds") == (NOW - AT).total_seconds()
    assert value(samples, "postmortem_bot_degraded") == 1  # a parked row: /healthz says degraded too
    # Resolved without a published post-mortem: the second checkout one and the one without a service.
    assert value(samples, "postmortem_bot_postmortems_unwritten") == 2


def test_an_empty_database_still_exports_every_family(engine: Engine) -> None:
    text, samples = scrape(engine)
    assert value(samples, "postmortem_bot_action_items_open") == 0
    for name, _ in KPI_METRICS.values():
        assert f"# TYPE postmortem_bot_{name} gauge" in text
    assert "# TYPE postmortem_bot_incidents_total counter" in text
    assert "oldest_unwritten" not in text  # nothing is waiting
    assert value(samples, "postmortem_bot_outbox_oldest_pending_seconds") == 0


def test_a_scrape_serves_the_last_refresh_and_never_queries_the_database(
    engine: Engine, session: Session, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(timezone="Europe/Berlin")
    snapshot = MetricsSnapshot(engine=engine, settings=settings, now=lambda: NOW)
    before = snapshot.exposition().decode()  # the first scrape computes the figures once
    assert "postmortem_bot_incidents_total{" not in before
    add_incident(session, at=AT, service="search")
    session.commit()
    monkeypatch.setattr(engine, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError("queried")))
    assert snapshot.exposition().decode() == before
    monkeypatch.undo()
    snapshot.refresh()
    after = snapshot.exposition().decode()
    assert 'postmortem_bot_incidents_total{service="search",urgency="high"} 1.0' in after


def test_promtool_check_metrics_is_clean(engine: Engine, session: Session) -> None:
    fixed_data_set(session)
    text, _ = scrape(engine)
    checked = subprocess.run(
        [debian_binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        checked.stdout + checked.stderr
    )
