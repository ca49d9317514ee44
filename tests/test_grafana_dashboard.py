"""deploy/grafana-dashboard.json: valid dashboard JSON whose every query names metrics `/metrics` exports."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from bot.core.config import load_settings
from bot.core.db import make_engine, upgrade
from bot.loop.metrics import WINDOWS, MetricsSnapshot
from tests.factories import add_action_item, add_incident

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana-dashboard.json"
AT = datetime(2026, 11, 20, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[frozenset]]:
    """Sample names the endpoint exports (with their label sets) on a small data set."""
    url = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'bot.core.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        incident = add_incident(session, at=AT, ack=60, response=600, resolve=1200, document=3600)
        add_action_item(session, incident, due=date(2026, 11, 21))
        session.commit()
    settings = load_settings(timezone="UTC")
    snapshot = MetricsSnapshot(engine=engine, settings=settings, now=lambda: AT)
    text = snapshot.exposition().decode()
    engine.dispose()
    names: dict[str, set[frozenset]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).add(frozenset(sample.labels.items()))
    return names


def panels() -> list[dict]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    return dashboard["panels"]


def test_panels_are_well_formed() -> None:
    found = panels()
    assert len({p["id"] for p in found}) == len(found)
    for panel in found:
        assert panel["type"] and panel["title"] and panel["targets"], panel
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_every_query_names_only_metrics_the_endpoint_exports(exported: dict[str, set[frozenset]]) -> None:
    used: set[str] = set()
    for panel in panels():
        for target in panel["targets"]:
            names = set(re.findall(r"\bpostmortem_bot_\w+", target["expr"]))
            assert names, f"panel {panel['title']!r} queries no postmortem_bot metric"
            missing = names - exported.keys()
            assert not missing, f"panel {panel['title']!r} uses {missing}, which /metrics does not export"
            used |= names
            # A label matcher must match an exported label value, for every value of $window.
            for window in WINDOWS:
                expr = target["expr"].replace("$window", window)
                for label, wanted in re.findall(r'(\w+)="([^"]*)"', expr):
                    assert any((label, wanted) in labels for name in names for labels in exported[name]), (
                        f"panel {panel['title']!r}: no exported sample has {label}={wanted!r}"
                    )
    # The dashboard's $window offers exactly the windows the bot computes.
    [variable] = [v for v in json.loads(DASHBOARD.read_text())["templating"]["list"] if v["name"] == "window"]
    assert [o["value"] for o in variable["options"]] == list(WINDOWS)
    # What the issue asks the dashboard to chart.
    for needed in (
        "postmortem_bot_kpi_mean_time_to_acknowledge_seconds",
        "postmortem_bot_kpi_mean_time_to_resolve_seconds",
        "postmortem_bot_kpi_within_response_target_ratio",
        "postmortem_bot_response_target_seconds",
        "postmortem_bot_kpi_mean_documentation_latency_seconds",
        "postmortem_bot_kpi_incidents",
        "postmortem_bot_incidents_total",
        "postmortem_bot_action_items_open",
        "postmortem_bot_action_items_overdue",
        "postmortem_bot_outbox_depth",
    ):
        assert needed in used, f"no panel charts {needed}"
