"""`postmortem-bot demo --once` plays the whole loop and prints the channels."""

from __future__ import annotations

import re

from bot.cli import main


def test_demo_once_plays_incident_to_digest(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCHEDULER_ENABLED", "true")  # as a new user runs it: no sweep may cut in
    assert main(["demo", "--once"]) == 0
    out = capsys.readouterr().out
    incident_channel = out.split("===== #inc-42-checkout-returns-500s", 1)[1].split("===== #postmortems")[0]
    postmortems = out.split("===== #postmortems", 1)[1].split("===== #wins")[0]
    assert "Incident #42" in incident_channel and "Write the post-mortem" in incident_channel
    assert postmortems.count("== Post-mortem #42: Checkout returns 500s") == 1  # posted once, then updated
    assert "a report query held the pool" in postmortems  # the edit, applied in place
    assert "On it. Error rate is 12%" in postmortems  # the pinned message, in the timeline
    assert ":white_check_mark: Alert when the pool is 80% busy (@alice)" in postmortems
    assert "Weekly incident digest" in postmortems and ".png" in postmortems
    # In story order: the summary, then the digest and the alerts the final sweep posts.
    alerts = [m.start() for m in re.finditer("Time to resolve above", postmortems)]
    assert postmortems.index("== Post-mortem #42") < min(alerts, default=len(postmortems))
    assert "===== #wins" in out


def test_demo_without_once_serves_the_page_until_interrupted() -> None:
    import json
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Try it in a browser:"):
                break
        url = re.search(r"http://127\.0\.0\.1:\d+", lines[-1])
        assert url, "".join(lines)
        assert any(line.startswith(f"The sandbox page: {url[0]}") for line in lines)  # printed first
        with urllib.request.urlopen(f"{url[0]}/api/state", timeout=10) as response:
            state = json.load(response)
        names = {c["name"] for c in state["workspace"]["channels"]}
        assert {"inc-42-checkout-returns-500s", "postmortems", "wins"} <= names
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
