"""Debian's Prometheus and promtool for the tests: a skip with the fix when absent locally, a failure in CI
(`CI=true`, where .ci/run installs the `prometheus` package)."""

from __future__ import annotations

import os
import shutil

import pytest


def debian_binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if found is None:
        reason = f"Debian's {name} is not installed: apt-get install -y prometheus"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Prometheus tests: {reason}")
        pytest.skip(reason)
    return found
