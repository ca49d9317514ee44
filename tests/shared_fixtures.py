"""The published payloads in ../shared/fixtures (beside the repository), with their signatures.

Tests that need them skip, saying why, when the directory is absent (a checkout without `../shared`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
FIXTURES = SHARED / "fixtures"
PAGERDUTY = FIXTURES / "pagerduty"


def require_fixtures() -> Path:
    if not (FIXTURES / "signature_test_vectors.json").is_file():
        pytest.skip(f"the published fixtures are not at {FIXTURES.resolve()} (../shared beside the repo)")
    return FIXTURES


@dataclass(frozen=True)
class SignedDelivery:
    name: str
    event_type: str
    body: bytes
    secret: str
    signature: str

    @property
    def event(self) -> dict:
        return json.loads(self.body)["event"]


def pagerduty_vectors() -> list[SignedDelivery]:
    """Every PagerDuty delivery that has a published signature: the files, and the inline body of the
    go-pagerduty vector (the priority_updated *file* has no published signature)."""
    require_fixtures()
    vectors = json.loads((FIXTURES / "signature_test_vectors.json").read_text())
    deliveries = []
    for vector in vectors:
        if "x_pagerduty_signature" not in vector:
            continue
        if "body" in vector:
            body, name = vector["body"].encode(), f"{vector['event_type']} (inline vector)"
        else:
            body, name = (FIXTURES / vector["file"]).read_bytes(), vector["file"]
        deliveries.append(
            SignedDelivery(
                name, vector["event_type"], body, vector["secret"], vector["x_pagerduty_signature"]
            )
        )
    return deliveries


def pagerduty_file(name: str) -> bytes:
    require_fixtures()
    return (PAGERDUTY / name).read_bytes()
