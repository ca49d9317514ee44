"""deploy/prometheus-rules.yml: valid for Debian's promtool, and its unit tests
(deploy/prometheus-rules.test.yml) green: each alert fires when it should, once across replicas."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.prometheus import debian_binary

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [debian_binary("promtool"), *args],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_rules_are_valid() -> None:
    checked = promtool("check", "rules", "prometheus-rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout + checked.stderr


def test_promtool_test_rules_is_green() -> None:
    tested = promtool("test", "rules", "prometheus-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr
