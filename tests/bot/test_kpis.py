"""KPIs on a fixed data set, against numbers computed by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from bot.loop.kpis import compute_kpis, median
from tests.factories import add_action_item, add_incident

SINCE = datetime(2026, 11, 16, tzinfo=UTC)
UNTIL = datetime(2026, 11, 23, tzinfo=UTC)


def d(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def fixed_data_set(session: Session) -> None:
    """Hand-computed figures for [Nov 16, Nov 23) are in the tests below."""
    add_incident(session, at=d(1, 10, month=10), service="search", ack=10, response=10, resolve=60)
    add_incident(session, at=d(10, 10), service="checkout", ack=30, response=60, resolve=600)
    one = add_incident(
        session, at=d(16, 9), service="checkout", ack=120, response=300, resolve=1800, document=3600
    )
    add_incident(session, at=d(17, 12), service="checkout", ack=60, response=1200, resolve=3000)
    three = add_incident(
        session, at=d(18, 8), service="payments", ack=240, response=600, resolve=900, document=7200
    )
    add_incident(session, at=d(20, 23), service="payments")
    add_incident(session, at=d(22, 18), service="search", ack=30, response=900, resolve=1200, document=1800)
    add_incident(session, at=d(23, 0), service="checkout", ack=1, response=1, resolve=1)  # after the period
    add_action_item(session, one, due=date(2026, 11, 18), completed_at=d(19, 10))
    add_action_item(session, one, due=date(2026, 11, 20))
    add_action_item(session, one, due=date(2026, 11, 25))
    add_action_item(session, three, due=date(2026, 11, 10), completed_at=d(24, 10))
    add_action_item(session, three, completed_at=d(16, 10))
    session.commit()


def test_overall_kpis_equal_hand_computed_values(session: Session) -> None:
    fixed_data_set(session)
    report = compute_kpis(
        session=session, since=SINCE, until=UNTIL, response_target_minutes=15, tz=ZoneInfo("UTC")
    )
    k = report.overall
    assert k.incidents == 5
    assert (k.acknowledged, k.mean_seconds_to_acknowledge) == (4, 112.5)  # (120+60+240+30)/4
    assert (k.responded, k.mean_seconds_to_first_response) == (4, 750.0)  # (300+1200+600+900)/4
    assert (k.resolved, k.mean_seconds_to_resolve) == (4, 1725.0)  # (1800+3000+900+1200)/4
    assert k.median_seconds_to_resolve == 1500.0  # [900, 1200, 1800, 3000]
    assert (k.documented, k.mean_seconds_to_document) == (3, 4200.0)  # (3600+7200+1800)/3
    assert k.median_seconds_to_document == 3600.0
    assert k.documentation_compliance == 0.75  # 3 of 4 resolved
    assert (k.within_target, k.within_target_share) == (3, 0.6)  # 300, 600, 900 <= 900 s, of 5
    assert k.repeat_incidents == 3  # checkout x2 (Nov 10 before), payments (Nov 18 before Nov 20)
    assert k.action_items_completed == 2  # Nov 19 and Nov 16; Nov 24 is after the period
    assert k.action_items_overdue == 2  # due Nov 20 (open), due Nov 10 (done only on Nov 24)


def test_per_service_kpis_equal_hand_computed_values(session: Session) -> None:
    fixed_data_set(session)
    report = compute_kpis(
        session=session, since=SINCE, until=UNTIL, response_target_minutes=15, tz=ZoneInfo("UTC")
    )
    assert list(report.by_service) == ["checkout", "payments", "search"]
    checkout, payments, search = report.by_service.values()
    assert (checkout.incidents, checkout.mean_seconds_to_acknowledge) == (2, 90.0)
    assert (checkout.mean_seconds_to_resolve, checkout.median_seconds_to_resolve) == (2400.0, 2400.0)
    assert (checkout.documentation_compliance, checkout.within_target_share) == (0.5, 0.5)
    assert (checkout.repeat_incidents, checkout.action_items_completed, checkout.action_items_overdue) == (
        2,
        1,
        1,
    )
    assert (payments.incidents, payments.resolved, payments.median_seconds_to_resolve) == (2, 1, 900.0)
    assert (payments.documentation_compliance, payments.mean_seconds_to_document) == (1.0, 7200.0)
    assert (payments.repeat_incidents, payments.action_items_completed, payments.action_items_overdue) == (
        1,
        1,
        1,
    )
    assert (search.incidents, search.within_target_share, search.repeat_incidents) == (1, 1.0, 0)
    assert search.median_seconds_to_document == 1800.0


def test_one_service_only(session: Session) -> None:
    fixed_data_set(session)
    report = compute_kpis(
        session=session,
        since=SINCE,
        until=UNTIL,
        response_target_minutes=15,
        tz=ZoneInfo("UTC"),
        service="checkout",
    )
    assert list(report.by_service) == ["checkout"]
    assert report.overall == report.by_service["checkout"]


def test_an_empty_period_has_no_means(session: Session) -> None:
    report = compute_kpis(
        session=session, since=SINCE, until=UNTIL, response_target_minutes=15, tz=ZoneInfo("UTC")
    )
    assert report.overall.incidents == 0
    assert report.overall.mean_seconds_to_resolve is None
    assert report.overall.within_target_share is None
    assert report.by_service == {}


@pytest.mark.parametrize(
    ("values", "expected"), [([], None), ([5], 5.0), ([1, 2], 1.5), ([1, 2, 9], 2.0), ([1, 3, 4, 9], 3.5)]
)
def test_median(values: list[int], expected: float | None) -> None:
    assert median(values) == expected


def test_cli_prints_the_kpis_as_json(database_url: str, engine, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import main
    from bot.core.db import session_scope

    with session_scope(engine) as session:
        fixed_data_set(session)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["kpis", "--since", "2026-11-16", "--until", "2026-11-23", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["overall"]["incidents"] == 5
    assert printed["overall"]["median_seconds_to_resolve"] == 1500.0
    assert main(["kpis", "--since", "2026-11-16", "--until", "2026-11-23", "--service", "search"]) == 0
    table = capsys.readouterr().out
    assert "search" in table and "Incidents" in table and "100%" in table


def test_repeat_window_is_exact_to_the_microsecond(session: Session) -> None:
    """30 days exactly counts as a repeat, a microsecond more does not (the comparison runs in SQL, per
    dialect: text on SQLite, timestamptz arithmetic on PostgreSQL)."""
    base = datetime(2026, 10, 20, 7, 30, 15, 250_001, tzinfo=UTC)
    add_incident(session, at=base, service="exact")
    add_incident(session, at=base + timedelta(days=30), service="exact")  # in the window: a repeat
    add_incident(session, at=base, service="late")
    add_incident(session, at=base + timedelta(days=30, microseconds=1), service="late")  # just outside
    add_incident(session, at=datetime(2026, 10, 28, 1, 59, 59, 999_999, tzinfo=UTC), service="fraction")
    add_incident(session, at=datetime(2026, 11, 27, 1, 59, 59, 999_999, tzinfo=UTC), service="fraction")
    session.commit()
    report = compute_kpis(
        session=session,
        since=datetime(2026, 11, 1, tzinfo=UTC),
        until=datetime(2026, 12, 1, tzinfo=UTC),
        response_target_minutes=15,
        tz=ZoneInfo("Europe/Paris"),
    )
    repeats = {name: k.repeat_incidents for name, k in report.by_service.items()}
    assert repeats == {"exact": 1, "late": 0, "fraction": 1}
    assert report.overall.repeat_incidents == 2


def test_medians_and_repeats_match_a_plain_python_reference(session: Session) -> None:
    """Random incidents (ties, odd and even counts, a service-less group): the SQL medians and repeat
    counts equal the ones computed here from every row."""
    rng = random.Random(6)
    rows = []
    for _ in range(300):
        at = (
            SINCE
            - timedelta(days=40)
            + timedelta(seconds=rng.randrange(50 * 86400), microseconds=rng.randrange(3))
        )
        service = rng.choice(["a", "b", "c", None])
        resolve = rng.choice([None, 60, 600, rng.randrange(1, 5000)])
        document = rng.choice([None, 3600, rng.randrange(1, 90000)]) if resolve else None
        add_incident(session, at=at, service=service, resolve=resolve, document=document)
        rows.append((at, service, resolve, document))
    session.commit()
    report = compute_kpis(
        session=session, since=SINCE, until=UNTIL + timedelta(days=5), response_target_minutes=15, tz=UTC
    )
    in_period = [r for r in rows if SINCE <= r[0] < UNTIL + timedelta(days=5)]

    def expected(group: list[tuple]) -> tuple:
        earlier = sorted(r[0] for r in rows if r[1] is not None and r[1] == group[0][1]) if group else []
        repeats = sum(
            1
            for r in group
            if r[1] is not None and any(r[0] - timedelta(days=30) <= e < r[0] for e in earlier)
        )
        return (
            median(sorted(r[2] for r in group if r[2] is not None)),
            median(sorted(r[3] for r in group if r[3] is not None)),
            repeats,
        )

    def figures(k) -> tuple:  # type: ignore[no-untyped-def]
        return (k.median_seconds_to_resolve, k.median_seconds_to_document, k.repeat_incidents)

    for name in ("a", "b", "c", None):
        group = [r for r in in_period if r[1] == name]
        assert figures(report.by_service["(no service)" if name is None else name]) == expected(group)
    overall = expected(in_period)[:2]
    assert figures(report.overall)[:2] == overall
    assert report.overall.repeat_incidents == sum(
        report.by_service[name].repeat_incidents for name in ("a", "b", "c")
    )


@pytest.mark.parametrize("command", [["kpis", "--since", "2026-11-16", "--until", "2026-11-23"], ["export"]])
def test_commands_on_a_database_never_migrated_explain_and_create_nothing(
    command: list[str],
    tmp_path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from bot.cli import main
    from bot.core.db import make_engine, upgrade

    if command == ["export"]:
        command = ["export", "--out", str(tmp_path / "out")]
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    assert main(command) == 2
    error = capsys.readouterr().err
    assert f"there is no database at {missing}" in error and "postmortem-bot db upgrade" in error
    assert "Traceback" not in error and not missing.exists() and not (tmp_path / "out").exists()

    # An empty database file (created by something else), and one at an older revision: explained too.
    make_engine(f"sqlite:///{missing}").connect().close()
    assert main(command) == 2
    assert "never migrated" in capsys.readouterr().err
    upgrade(f"sqlite:///{missing}", "0001")
    assert main(command) == 2
    assert "at schema revision 0001, this bot needs" in capsys.readouterr().err
    upgrade(f"sqlite:///{missing}")
    assert main(command) == 0
