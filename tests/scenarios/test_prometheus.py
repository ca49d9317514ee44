"""Debian's Prometheus scraping the running bot every second while PagerDuty deliveries arrive late and out
of order, for new services and urgencies, over history seeded before the first scrape. Every query of
deploy/grafana-dashboard.json (for every $window) and every rule of deploy/prometheus-rules.yml is
evaluated by Prometheus itself, through its HTTP API, and compared with `postmortem-bot kpis --json` for
the same window, or with the database.

Bounded in time: every wait polls for a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlmodel import Session, func, select

from bot.cli import main
from bot.core.clock import utcnow
from bot.core.config import Settings
from bot.core.db import make_engine, upgrade
from bot.core.models import ActionItem, ActionItemStatus, Incident
from bot.devtools.sandbox.pagerduty_sender import FakeIncident, PagerDutySender, event_body
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack
from bot.loop.metrics import WINDOWS
from bot.loop.wins import slow_runs
from bot.slack.outbox import depth
from tests.factories import add_incident
from tests.processing import wait_until_processed
from tests.prometheus import debian_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TIMEZONE = "Europe/Berlin"
DEADLINE_SECONDS = 60
KPI = re.compile(r"postmortem_bot_kpi_(\w+)")
# Dashboard metric (after postmortem_bot_kpi_) -> field of `kpis --json`.
KPI_FIELDS = {
    "incidents": "incidents",
    "mean_time_to_acknowledge_seconds": "mean_seconds_to_acknowledge",
    "mean_time_to_first_response_seconds": "mean_seconds_to_first_response",
    "within_response_target_ratio": "within_target_share",
    "mean_time_to_resolve_seconds": "mean_seconds_to_resolve",
    "median_time_to_resolve_seconds": "median_seconds_to_resolve",
    "mean_documentation_latency_seconds": "mean_seconds_to_document",
    "median_documentation_latency_seconds": "median_seconds_to_document",
    "documentation_compliance_ratio": "documentation_compliance",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)
    return result


class Prometheus:
    """A Prometheus server on loopback, its TSDB in a temporary directory, scraping the bot every second."""

    def __init__(self, *, target: str, directory: Path) -> None:
        # Set once the scenario is scraped: every query is then evaluated at that one instant, so all of
        # them read the same scrape (even if a local midnight passes while the test runs).
        self.at: float | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus-rules.yml")],
            "scrape_configs": [
                {"job_name": "postmortem-bot", "static_configs": [{"targets": [target]}]},
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                debian_binary("prometheus"),
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        data = self.api("query", query=expr, **({"time": repr(self.at)} if self.at is not None else {}))
        assert data["resultType"] == "vector", data
        return data["result"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def exited(self) -> bool:
        """Exited before it was ready (e.g. its free port was taken meanwhile by another process)."""
        return self.process.poll() is not None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def start_prometheus(target: str, tmp_path: Path) -> Prometheus:
    """Started and ready; tried again on a new port if the free one was taken before Prometheus bound it."""
    for attempt in range(3):
        directory = tmp_path / f"prometheus-{attempt}"
        directory.mkdir()
        prometheus = Prometheus(target=target, directory=directory)
        wait_for(lambda server=prometheus: server.ready() or server.exited(), "prometheus to start")
        if prometheus.ready():
            return prometheus
        prometheus.stop()
    raise AssertionError(f"prometheus did not start: see {tmp_path}/prometheus-*/prometheus.log")


def seed_history(database_url: str, now: datetime) -> dict[str, int]:
    """Thirty days of incidents before the bot (and Prometheus) start: three services, two urgencies,
    documented or not, one still open, and three slow ones in a row for checkout (the MTTR streak)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        for day in range(1, 29, 3):
            add_incident(
                session,
                at=now - timedelta(days=day, hours=2),
                service="payments" if day % 2 else "search",
                urgency="low" if day % 4 == 1 else "high",
                ack=60 * day,
                response=45 * day,
                resolve=600 * day,
                document=3600 * day if day < 20 else None,
            )
        for hours in (30, 20, 10):  # checkout: each over ALERT_MTTR_MINUTES (20) to resolve
            add_incident(session, at=now - timedelta(hours=hours), service="checkout", resolve=3600)
        add_incident(session, at=now - timedelta(hours=3), service="search", ack=30)  # still open
        session.commit()
        counts = {"incidents": session.exec(select(func.count()).select_from(Incident)).one()}
    engine.dispose()
    return counts


def play_late_and_out_of_order(stack: LocalStack, now: datetime) -> None:
    """New service and urgency (ledger, low), a resolution delivered twice with the earlier one late (the
    earliest wins: the time to resolve goes down), an acknowledgement arriving after the resolution."""
    sender = PagerDutySender(stack.bot_url, PAGERDUTY_SECRET)
    ledger = FakeIncident(
        number=901, title="Ledger lag", service_id="PLEDGER", service_name="ledger",
        created_at=now - timedelta(minutes=10), urgency="low",
    )  # fmt: skip
    batch = FakeIncident(
        number=902, title="Batch stuck", service_id="PBATCH", service_name="batch",
        created_at=now - timedelta(minutes=8),
    )  # fmt: skip
    bodies = [
        event_body(ledger, "incident.triggered", at=ledger.created_at, status="triggered"),
        event_body(ledger, "incident.resolved", at=now - timedelta(minutes=1), status="resolved"),
        event_body(ledger, "incident.resolved", at=now - timedelta(minutes=6), status="resolved"),  # late
        event_body(batch, "incident.triggered", at=batch.created_at, status="triggered"),
        event_body(batch, "incident.resolved", at=now - timedelta(minutes=2), status="resolved"),
        event_body(batch, "incident.acknowledged", at=now - timedelta(minutes=7), status="acknowledged"),
    ]
    for body in bodies:
        status, answer = sender.deliver(body)
        assert status == 202, answer
        # One at a time, processed in the order they arrive (what "late" means to the bot).
        wait_until_processed(stack.database_url, event_ids=[json.loads(body)["event"]["id"]], timeout=60)


def kpis_json(database_url: str, since: datetime, until: datetime, monkeypatch, capsys) -> dict:  # type: ignore[no-untyped-def]
    """`postmortem-bot kpis --json` for [since, until), local days."""
    tz = ZoneInfo(TIMEZONE)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TIMEZONE", TIMEZONE)
    capsys.readouterr()
    days = [instant.astimezone(tz).date().isoformat() for instant in (since, until)]
    assert main(["kpis", "--since", days[0], "--until", days[1], "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def same(actual: float, expected: float | None) -> bool:
    return expected is not None and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture
def running(database_url: str, tmp_path: Path) -> Iterator[tuple[LocalStack, Prometheus, datetime, int]]:
    now = utcnow()
    seeded = seed_history(database_url, now)["incidents"]
    with LocalStack(database_url, metrics_refresh_seconds=0.2, timezone=TIMEZONE) as stack:
        prometheus = start_prometheus(stack.bot_url.removeprefix("http://"), tmp_path)
        try:
            yield stack, prometheus, now, seeded
        finally:
            prometheus.stop()


def test_every_dashboard_panel_and_rule_agrees_with_the_bot(running, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    stack, prometheus, now, seeded = running
    # History counts from the first scrape: the first sample already holds the seeded incidents.
    first = wait_for(
        lambda: prometheus.query('postmortem_bot_kpi_incidents{window="30d",service=""}'), "the first scrape"
    )
    assert float(first[0]["value"][1]) == seeded == 14

    play_late_and_out_of_order(stack, now)
    played = time.time()
    # Prometheus holds a scrape of figures computed after the last delivery was processed.
    [scraped] = wait_for(
        lambda: [s for s in prometheus.query("postmortem_bot_metrics_computed_timestamp_seconds")
                 if float(s["value"][1]) > played],
        "a scrape of the figures after the scenario",
    )  # fmt: skip
    prometheus.at = float(scraped["value"][0])

    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    engine = make_engine(stack.database_url)
    compared = 0
    for window in WINDOWS:
        [start] = prometheus.query(f'postmortem_bot_kpi_window_start_timestamp_seconds{{window="{window}"}}')
        [end] = prometheus.query(f'postmortem_bot_kpi_window_end_timestamp_seconds{{window="{window}"}}')
        since, until = (datetime.fromtimestamp(float(s["value"][1]), UTC) for s in (start, end))
        report = kpis_json(stack.database_url, since, until, monkeypatch, capsys)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$window", window)
                result = prometheus.query(expr)
                match = KPI.search(expr)
                if match:
                    field = KPI_FIELDS[match.group(1)]
                    expected = (
                        {s: k[field] for s, k in report["by_service"].items() if k[field] is not None}
                        if 'service!=""' in expr
                        else ({"": report["overall"][field]} if report["overall"][field] is not None else {})
                    )
                    shown = {s["metric"].get("service", ""): float(s["value"][1]) for s in result}
                    assert shown.keys() == expected.keys(), (panel["title"], window, shown, expected)
                    for service, value in shown.items():
                        assert same(value, expected[service]), (panel["title"], window, service, value)
                else:
                    check_state_panel(panel["title"], expr, result, engine, stack)
                compared += 1
    assert compared == 3 * sum(len(p["targets"]) for p in dashboard["panels"])

    # The late, earlier resolution lowered ledger's time to resolve: a gauge that went down, while no
    # counter was ever reset.
    ledger = prometheus.query('postmortem_bot_kpi_mean_time_to_resolve_seconds{window="1d",service="ledger"}')
    assert [float(s["value"][1]) for s in ledger] in ([240.0], [])  # [] only right after local midnight
    assert all(
        float(s["value"][1]) == 0 for s in prometheus.query("resets(postmortem_bot_incidents_total[1h])")
    )
    urgencies = {s["metric"]["urgency"] for s in prometheus.query("postmortem_bot_incidents_total")}
    assert urgencies == {"high", "low"}

    check_rules(prometheus, engine, stack.server.settings)
    engine.dispose()


def check_state_panel(title: str, expr: str, result: list[dict], engine, stack: LocalStack) -> None:  # type: ignore[no-untyped-def]
    """Panels of the bot's state now: compared with the database or the configuration."""
    values = {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in result}
    with Session(engine) as session:
        if "response_target_seconds" in expr:
            assert values == {(): stack.server.settings.response_target_minutes * 60}, title
        elif "postmortems_unwritten" in expr:
            unwritten = session.exec(
                select(func.count()).where(
                    Incident.resolved_at.is_not(None),
                    Incident.postmortem_published_at.is_(None),  # type: ignore[union-attr]
                )
            ).one()
            assert values == {(): unwritten}, title
        elif "incidents_total" in expr:
            rows = session.exec(select(Incident.urgency, func.count()).group_by(Incident.urgency)).all()
            assert values == {(("urgency", urgency or "unknown"),): n for urgency, n in rows}, title
        elif "action_items" in expr:
            open_items = session.exec(
                select(func.count()).where(ActionItem.status == ActionItemStatus.OPEN)
            ).one()
            assert values in ({(): open_items}, {(): 0}), title  # open, or overdue (none seeded)
        elif "outbox_depth" in expr:
            counts = depth(session)
            # Figures are read periodically: a row sent meanwhile may still count as pending.
            assert values[(("status", "parked"),)] == counts["parked"] == 0, title
            assert (("status", "pending"),) in values and (("status", "sent"),) not in values, title
        else:
            raise AssertionError(f"panel {title!r} ({expr}) is compared with nothing: add it here")


def check_rules(prometheus: Prometheus, engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Every rule's expression, evaluated by Prometheus, against the database; and the alerts it fires."""
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())["groups"][0]["rules"]
    with Session(engine) as session:
        oldest = session.exec(
            select(func.min(Incident.resolved_at)).where(Incident.postmortem_published_at.is_(None))  # type: ignore[union-attr]
        ).one()
    oldest = oldest.replace(tzinfo=UTC) if oldest.tzinfo is None else oldest
    for rule in rules:
        result = prometheus.query(rule["expr"])
        match rule["alert"]:
            case "PostmortemNotPublished":  # the seeded incident of 19 days ago, unwritten
                [sample] = result
                at, minutes = sample["value"]
                assert math.isclose(float(minutes), (float(at) - oldest.timestamp()) / 60, abs_tol=0.02)
            case "PostmortemBotMttrStreak":  # checkout's three slow incidents in a row, and search's
                with Session(engine) as session:
                    runs = slow_runs(session=session, settings=settings, now=utcnow())
                expected = {s: len(run) for s, run in runs.items() if len(run) >= settings.alert_consecutive}
                assert expected["checkout"] == 3
                assert {s["metric"]["service"]: float(s["value"][1]) for s in result} == expected
            case "PostmortemBotOutboxParked" | "PostmortemBotDegraded":
                assert result == [], rule["alert"]
            case other:
                raise AssertionError(f"rule {other} is compared with nothing: add it here")
    assert all(r["health"] == "ok" for g in prometheus.api("rules")["groups"] for r in g["rules"])
    firing = wait_for(
        lambda: (
            {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"}
            >= {"PostmortemNotPublished", "PostmortemBotMttrStreak"}
            and {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]}
        ),
        "the two alerts to fire",
    )
    assert firing == {"PostmortemNotPublished", "PostmortemBotMttrStreak"}
