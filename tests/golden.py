"""Golden files: rendered output compared byte for byte with tests/golden/<name>.

After an intended change, regenerate with `UPDATE_GOLDEN=1 make test` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).parent / "golden"


def assert_golden(name: str, actual: str | dict | list) -> None:
    text = (
        actual
        if isinstance(actual, str)
        else json.dumps(actual, indent=2, sort_keys=True, default=str) + "\n"
    )
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if os.environ.get("UPDATE_GOLDEN") != "1":
            raise AssertionError(
                f"golden file {path} did not exist; it was written now: review and commit it"
            )
    expected = path.read_text()
    assert text == expected, f"output differs from {path} (UPDATE_GOLDEN=1 rewrites it)"


def loads_golden(name: str) -> Any:
    return json.loads((GOLDEN_DIR / name).read_text())
