"""The digest's ownership section (bot/loop/ownership.py), with hand-counted data, on SQLite and
PostgreSQL: incidents of services with no owner, and post-mortems that missed the documentation-latency
target, by owner (SERVICE_OWNERS, else PagerDuty's answer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from bot.core.config import load_settings
from bot.core.models import Incident
from bot.core.service_owners import ServiceOwnerLookup
from bot.devtools.sandbox.block_checks import validate_message_blocks
from bot.domain.incidents import display_id
from bot.domain.owners import LOOKUP_REFRESH, claim_lookup, owe_lookup, record_lookup
from bot.loop.digest import digest_message
from bot.loop.ownership import ownership_report
from tests.factories import add_incident
from tests.golden import assert_golden

SETTINGS = load_settings(timezone="UTC", service_owners="search=@search-team", doc_latency_target_hours="48")
WEEK = (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
HOUR = 3600
ACME = "acme.pagerduty.com"


def add(
    session: Session,
    day: int,
    hour: int,
    service: str | None,
    service_id: str | None = None,
    document_hours: int | None = None,
    resolved: bool = True,
) -> Incident:
    """An incident of November `day` at `hour`, resolved an hour later, its post-mortem published
    `document_hours` after that (None: not published)."""
    incident = add_incident(
        session,
        at=datetime(2026, 11, day, hour, tzinfo=UTC),
        service=service,
        resolve=HOUR if resolved else None,
        document=document_hours * HOUR if document_hours is not None else None,
    )
    incident.service_id = service_id
    incident.pagerduty_account = ACME if service_id else ""
    session.add(incident)
    session.flush()
    return incident


def data(session: Session) -> dict[str, Incident]:
    session.add(
        ServiceOwnerLookup(
            service_id="PSVC001",
            owner="Payments",
            owner_kind="team",
            owner_url="https://acme.pagerduty.com/teams/PTEAM01",
            looked_up_at=WEEK[0],
        )
    )
    session.add(ServiceOwnerLookup(service_id="PSVC002", looked_up_at=WEEK[0]))  # PagerDuty names no one
    found = {
        # The week: owned by PagerDuty's team.
        "on_time": add(session, 16, 10, "checkout", "PSVC001", document_hours=10),
        "unpublished": add(session, 17, 9, "checkout", "PSVC001"),  # deadline Nov 19 10:00: missed
        "just_in_time": add(session, 17, 12, "checkout", "PSVC001", document_hours=47),
        "deadline_next_week": add(session, 21, 11, "checkout", "PSVC001"),  # deadline Nov 23 12:00
        # The week: no owner (PagerDuty names no one; a service known by name only).
        "storefront": add(session, 18, 8, "storefront", "PSVC002"),  # late too, but nobody owns it
        "storefront_open": add(session, 19, 8, "storefront", "PSVC002", resolved=False),
        "legacy": add(session, 20, 8, "legacy", document_hours=1),
        # The week: owned by SERVICE_OWNERS (by name); no service at all; merged (in no KPI).
        "search": add(session, 20, 9, "search", document_hours=1),
        "declared": add(session, 18, 9, None),
        "merged": add(session, 19, 9, "storefront", "PSVC002"),
        # The week before: deadlines in the week (late), before it, and an unowned incident out of range.
        "published_late": add(session, 14, 11, "checkout", "PSVC001", document_hours=50),
        "search_late": add(session, 15, 0, "search", document_hours=72),
        "judged_last_week": add(session, 13, 0, "checkout", "PSVC001"),  # deadline Nov 15 01:00
        "storefront_before": add(session, 12, 8, "storefront", "PSVC002"),
    }
    found["merged"].merged_into = "PSURVIVOR"
    session.add(found["merged"])
    session.commit()
    return found


def test_the_ownership_section_counts_by_hand(session: Session) -> None:
    incidents = data(session)
    report = ownership_report(session=session, settings=SETTINGS, since=WEEK[0], until=WEEK[1])

    def ref(name: str) -> str:
        return display_id(incidents[name])

    assert report == {
        # storefront: 2 of the week (the merged one is in no count); legacy: 1.
        "unowned_incidents": 3,
        "unowned": [
            {"service": f"<https://{ACME}/services/PSVC002|storefront>", "incidents": 2},
            {"service": "legacy", "incidents": 1},
        ],
        "unowned_more": 0,
        "late_total": 3,
        "late": [
            {
                "owner": "<https://acme.pagerduty.com/teams/PTEAM01|Payments> (PagerDuty team)",
                "refs": [ref("published_late"), f"{ref('unpublished')} (not published)"],
            },
            {"owner": "@search-team", "refs": [ref("search_late")]},
        ],
        "target_hours": 48,
    }
    text, blocks, _ = digest_message(session=session, settings=SETTINGS, week_start=WEEK[0], week_end=WEEK[1])
    assert validate_message_blocks(blocks) == []
    assert_golden("weekly_digest_ownership.json", {"text": text, "blocks": blocks})


def test_a_renamed_service_is_one_row_under_its_current_name_and_same_names_stay_apart(
    session: Session,
) -> None:
    data(session)
    add(session, 21, 8, "shopfront", "PSVC002")  # storefront, renamed in PagerDuty
    add(session, 21, 9, "legacy", "PSVC003")  # another service called legacy, with an id
    session.commit()
    report = ownership_report(session=session, settings=SETTINGS, since=WEEK[0], until=WEEK[1])
    assert report["unowned"] == [
        {"service": f"<https://{ACME}/services/PSVC002|shopfront>", "incidents": 3},
        {"service": f"<https://{ACME}/services/PSVC003|legacy (PSVC003)>", "incidents": 1},
        {"service": "legacy", "incidents": 1},
    ]
    assert report["unowned_incidents"] == 5


def test_the_setting_names_an_owner_pagerduty_does_not(session: Session) -> None:
    data(session)
    settings = load_settings(
        timezone="UTC",
        service_owners="PSVC002=U0STORE,legacy=@legacy,search=@search-team",
        doc_latency_target_hours="48",
    )
    report = ownership_report(session=session, settings=settings, since=WEEK[0], until=WEEK[1])
    assert (report["unowned_incidents"], report["unowned"]) == (0, [])
    # storefront's unpublished post-mortem (deadline Nov 20 09:00) now has an owner who missed it.
    assert [row["owner"] for row in report["late"]] == [
        "<https://acme.pagerduty.com/teams/PTEAM01|Payments> (PagerDuty team)",
        "@search-team",
        "<@U0STORE>",
    ]


def test_a_lookup_is_owed_for_a_new_service_and_again_once_its_answer_is_a_day_old(session: Session) -> None:
    at = WEEK[0]
    owe_lookup(session, service_id="PSVC009", at=at)
    assert claim_lookup(session, now=at, lease=timedelta(seconds=60)) == "PSVC009"
    owe_lookup(session, service_id="PSVC009", at=at)  # leased: owed already, nothing changes
    assert claim_lookup(session, now=at, lease=timedelta(seconds=60)) is None
    record_lookup(session, service_id="PSVC009", found=None, at=at)
    owe_lookup(session, service_id="PSVC009", at=at + LOOKUP_REFRESH)  # exactly a day: still fresh
    assert claim_lookup(session, now=at + LOOKUP_REFRESH, lease=timedelta(seconds=60)) is None
    later = at + LOOKUP_REFRESH + timedelta(seconds=1)
    owe_lookup(session, service_id="PSVC009", at=later)
    assert claim_lookup(session, now=later, lease=timedelta(seconds=60)) == "PSVC009"
