"""The PagerDuty lifecycle on SQLite and PostgreSQL: KPIs of reopened and merged incidents against values
computed by hand, in every delivery order; identity by account and id; services by id."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.models import Incident
from bot.domain.pagerduty import Outcome
from bot.loop.kpis import compute_kpis
from tests.bot.test_pagerduty import deliver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pagerduty"
DAY = (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def changed(document: dict[str, Any] | bytes, event_id: str, **changes: Any) -> bytes:
    """A delivery with another event id and some fields changed (`data__service__summary=...`)."""
    copy = json.loads(document if isinstance(document, bytes) else json.dumps(document))
    copy["event"]["id"] = event_id
    for path, value in changes.items():
        where = copy["event"]
        *parents, last = path.split("__")
        for part in parents:
            where = where[part]
        where[last] = value
    return json.dumps(copy).encode()


def body(name: str) -> bytes:
    return json.dumps(fixture(name)).encode()


def second_incident(kind: str, minute: int) -> bytes:
    """PSECOND, #414: triggered 13:05, acknowledged 13:06, resolved 13:35."""
    return changed(
        fixture(f"incident.{kind}"),
        f"01SECOND{kind.upper()}",
        occurred_at=f"2026-11-23T13:{minute:02d}:00.000Z",
        data__id="PSECOND",
        data__number=414,
        data__html_url="https://acme.pagerduty.com/incidents/PSECOND",
        data__created_at="2026-11-23T13:05:00Z",
    )


def overall(engine: Engine) -> Any:
    with Session(engine) as session:
        return compute_kpis(
            session=session, since=DAY[0], until=DAY[1], response_target_minutes=15, tz=ZoneInfo("UTC")
        )


@pytest.mark.parametrize("seed", [None, 1, 2, 3, 4])
def test_reopen_then_resolve_counts_to_the_final_resolution_and_a_merge_counts_nowhere(
    engine: Engine, seed: int | None
) -> None:
    merged = fixture("incident.resolved.merged")
    bodies = [
        # PLIFE01, #412: triggered 13:00, acknowledged 13:02, resolved 13:20, reopened 13:30, resolved 14:30.
        *(
            body(f"incident.{n}")
            for n in ("triggered", "acknowledged", "resolved", "reopened", "resolved.final")
        ),
        # PDUPE01, #413: triggered 13:38, merged into PLIFE01 at 13:40.
        changed(
            merged,
            "01DUPETRIGGERED",
            event_type="incident.triggered",
            occurred_at="2026-11-23T13:38:00.000Z",
            data__status="triggered",
            data__resolve_reason=None,
        ),
        json.dumps(merged).encode(),
        second_incident("triggered", 5),
        second_incident("acknowledged", 6),
        second_incident("resolved", 35),
    ]
    if seed is not None:
        random.Random(seed).shuffle(bodies)
    assert {deliver(engine, b) for b in bodies} == {Outcome.PROCESSED}
    report = overall(engine)
    # By hand: PLIFE01 acknowledged after 120 s and resolved (finally) after 5,400 s; PSECOND after 60 s
    # and 1,800 s; PDUPE01 was merged: in no figure, not even the count.
    kpis = report.overall
    assert (kpis.incidents, kpis.acknowledged, kpis.resolved) == (2, 2, 2)
    assert kpis.mean_seconds_to_acknowledge == (120 + 60) / 2
    assert kpis.mean_seconds_to_resolve == (5400 + 1800) / 2
    assert kpis.median_seconds_to_resolve == (5400 + 1800) / 2
    assert kpis.repeat_incidents == 1  # PSECOND came 5 minutes after PLIFE01 on Checkout
    assert list(report.by_service) == ["Checkout"] and report.by_service["Checkout"].incidents == 2
    with Session(engine) as session:
        incidents = {i.pagerduty_id: i for i in session.exec(select(Incident))}
    assert incidents["PLIFE01"].seconds_to_resolve == 5400 and incidents["PLIFE01"].status == "resolved"
    assert incidents["PDUPE01"].merged_into == "PLIFE01"


def test_one_id_on_two_accounts_is_two_incidents(engine: Engine) -> None:
    deliver(engine, body("incident.triggered"))
    deliver(
        engine,
        changed(
            fixture("incident.triggered"),
            "01OTHERACCOUNT",
            data__html_url="https://globex.pagerduty.com/incidents/PLIFE01",
        ),
    )
    deliver(engine, body("incident.acknowledged"))
    with Session(engine) as session:
        incidents = {i.pagerduty_account: i for i in session.exec(select(Incident))}
    assert set(incidents) == {"acme.pagerduty.com", "globex.pagerduty.com"}
    assert incidents["acme.pagerduty.com"].status == "acknowledged"
    assert incidents["globex.pagerduty.com"].status == "triggered"


def test_a_renamed_service_stays_one_and_two_services_of_one_name_stay_two(engine: Engine) -> None:
    deliver(engine, body("incident.triggered"))
    deliver(engine, second_incident("triggered", 5))
    # PSVC001 is renamed: its later event carries the new name, and its earlier incident follows.
    deliver(
        engine,
        changed(fixture("incident.priority_updated"), "01RENAMED", data__service__summary="Storefront"),
    )
    # Another service, with the name PSVC001 had before.
    deliver(
        engine,
        changed(
            second_incident("triggered", 9),
            "01OTHERSERVICE",
            data__id="POTHER1",
            data__number=415,
            data__html_url="https://acme.pagerduty.com/incidents/POTHER1",
            data__service__id="PSVC002",
            data__service__summary="Storefront",
        ),
    )
    report = overall(engine)
    assert {name: k.incidents for name, k in report.by_service.items()} == {
        "Storefront": 2,
        "Storefront (PSVC002)": 1,
    }
    assert report.overall.repeat_incidents == 1  # PSECOND after PLIFE01; POTHER1 is another service
