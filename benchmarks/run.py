"""`make bench` / `make bench-quick`: the bot against its floors, in one run, on this machine.

Processes (the machine has 2 cores; which ones compete matters for reading the figures):

- the server under test, one at a time: the bot (`python -m bot serve`, waitress 16 threads) or a floor
  (`benchmarks.floors`, same server). Python runs it on one core at a time (the GIL);
- the load generator (`benchmarks.loadgen`), a process of its own so it never shares the server's GIL;
- the Slack sandbox (`benchmarks.sandbox_server`), a process of its own; only the bot calls it (the
  floors make no Web API calls), so during bot phases the sandbox and the load generator share the core
  the server is not using, and the bot pays for a real HTTP round trip to "Slack" on each `views.open`.

Every ratio compares figures measured in this run, on this machine, minutes apart. The load average
before and after is recorded because other work on the machine moves the numbers.

`python -m benchmarks.run [--quick]`: writes benchmarks/results/<timestamp>.json and latest.json (full
runs only; --quick writes to a temporary directory unless --out is given) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.harness import (
    FULL,
    QUICK,
    RESULTS,
    ROOT,
    Figure,
    Profile,
    bot_process,
    control,
    database,
    errors,
    floor_bolt,
    floor_pagerduty,
    loadgen,
    outbox_drained,
    pagerduty_spec,
    profiled,
    sandbox_process,
)
from benchmarks.loadgen import summarize_ms
from benchmarks.request_path import request_path
from benchmarks.scrape import scrape_phase
from benchmarks.storm import storm_phase


def stored_deliveries(database_url: str) -> int:
    from sqlmodel import Session, func, select

    from bot.core.db import make_engine
    from bot.core.models import InboundDelivery

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(InboundDelivery)).one()
    finally:
        engine.dispose()


NUMBER_BASES = {
    ("sqlite", "B3"): 100_000,
    ("sqlite", "B4"): 200_000,
    ("postgresql", "B3"): 300_000,
    ("postgresql", "B4"): 400_000,
}


def webhook_phase(
    profile: Profile, work: Path, sandbox: dict[str, str], db_kind: str, floors: dict[str, Any]
) -> list[Figure]:
    """B3: a storm of `incident.triggered` deliveries, each a new incident (the outbox opens channels
    meanwhile, as it would in a real storm)."""
    with database(db_kind, work) as url, bot_process(work, sandbox, url, f"{db_kind}-b3") as bot:
        port = int(bot.url.rsplit(":", 1)[1])
        spec = pagerduty_spec(profile, port, f"{db_kind[:2]}b3", number_base=NUMBER_BASES[db_kind, "B3"])
        with profiled(bot.proc.pid, work, f"b3-{db_kind}"):
            b3 = loadgen(spec)
        stored = stored_deliveries(url)
    floor = floors["pagerduty"]
    detail = {"bot": b3, "floor": floor, "stored_deliveries": stored}
    return [
        Figure(
            "B3",
            "PagerDuty webhook, checked + stored, 16 concurrent",
            b3["rps"],
            "req/s",
            db_kind,
            floor=floor["rps"],
            target=">= 0.5 x bare endpoint",
            met=errors(b3) == 0 and b3["rps"] >= 0.5 * floor["rps"],
            detail=detail,
        ),
        Figure(
            "B3",
            "  p99",
            b3["p99_ms"],
            "ms",
            db_kind,
            floor=floor["p99_ms"],
            target="< 50 ms",
            met=b3["p99_ms"] is not None and b3["p99_ms"] < 50,
            detail={"p50_ms": b3["p50_ms"]},
        ),
    ]


PROMPT = re.compile(r"Incident #(\d+) resolved after")


def prompt_phase(profile: Profile, work: Path, sandbox: dict[str, str], db_kind: str) -> list[Figure]:
    """B4: incidents are open with their channels; `incident.resolved` arrives at a steady rate, and each
    prompt is timed from the delivery leaving the load generator to the sandbox receiving the post."""
    count = int(profile.webhook_rate * profile.webhook_seconds)
    base = NUMBER_BASES[db_kind, "B4"]
    with database(db_kind, work) as url, bot_process(work, sandbox, url, f"{db_kind}-b4") as bot:
        port = int(bot.url.rsplit(":", 1)[1])
        common = {"number_base": base, "max_requests": count, "warmup": 0}
        opened = loadgen(
            pagerduty_spec(
                profile,
                port,
                f"{db_kind[:2]}b4",
                event_types=["incident.triggered"],
                connections=4,
                duration=120,
                **common,
            )
        )
        drain = outbox_drained(bot.url, timeout=120)
        spec = pagerduty_spec(
            profile,
            port,
            f"{db_kind[:2]}b4",
            event_types=["incident.resolved"],
            rate=profile.webhook_rate,
            duration=profile.webhook_seconds + 5,
            keep_records=True,
            **common,
        )
        with profiled(bot.proc.pid, work, f"b4-{db_kind}"):
            resolved = loadgen(spec)
        sent = {
            int(tag.split(":")[0]): sent_wall for tag, sent_wall, _latency, _status in resolved.pop("records")
        }

        def prompts() -> dict[int, float]:
            found: dict[int, float] = {}
            for call in control(sandbox, "/bench/calls", method="chat.postMessage")["calls"]:
                match = PROMPT.search(call["text"] or "")
                if call["ok"] and match and int(match.group(1)) in sent:
                    found.setdefault(int(match.group(1)), call["at"])
            return found

        deadline = time.monotonic() + 60
        found = prompts()
        while len(found) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.5)
            found = prompts()
    delays = [found[number] - sent[number] for number in found]
    b4 = {
        **summarize_ms(delays),
        "resolved_sent": len(sent),
        "prompts": len(found),
        "rate": profile.webhook_rate,
        "webhooks": resolved,
        "setup": {"triggered": opened, "outbox_drain_seconds": drain},
    }
    ok = len(found) == len(sent) == count
    return [
        Figure(
            "B4",
            f"incident.resolved -> prompt in channel at {profile.webhook_rate:g}/s, p50",
            b4["p50_ms"],
            "ms",
            db_kind,
            detail=b4,
        ),
        Figure(
            "B4",
            "  p99",
            b4["p99_ms"],
            "ms",
            db_kind,
            target="< 1000 ms",
            met=ok and b4["p99_ms"] is not None and b4["p99_ms"] < 1000,
        ),
    ]


def kpi_phase(profile: Profile, work: Path, db_kind: str) -> list[Figure]:
    from benchmarks import kpi_bench

    with database(db_kind, work / "kpis") if db_kind != "sqlite" else _sqlite_kpis(work) as url:
        steps = kpi_bench.run(url, profile.kpi_sizes)
    figures = []
    targets = {100_000: 1.0, 1_000_000: 1.0}  # issue 16, B5: 1M under 1 s
    for step in steps:
        limit = targets.get(step["incidents"])
        figures.append(
            Figure(
                "B5",
                f"KPIs over {step['incidents']:,} incidents",
                step["kpis_seconds"],
                "s",
                db_kind,
                target=f"< {limit:g} s" if limit else "",
                met=step["kpis_seconds"] < limit if limit else None,
                detail=step,
            )
        )
    first, last = steps[0], steps[-1]
    growth = (last["kpis_seconds"] / first["kpis_seconds"]) / (last["incidents"] / first["incidents"])
    figures.append(
        Figure(
            "B5",
            f"  growth {first['incidents']:,} -> {last['incidents']:,} (time ratio / size ratio)",
            round(growth, 2),
            "",
            db_kind,
            target="<= 1.25 (linear)",
            met=growth <= 1.25,
        )
    )
    for step in steps:
        if "digest_seconds" in step:
            figures.append(
                Figure(
                    "B5",
                    f"  weekly digest (message + chart) over {step['incidents']:,}",
                    step["digest_seconds"],
                    "s",
                    db_kind,
                    target="(context)",
                    detail=step,
                )
            )
    if "digest_seconds" not in last:
        figures.append(Figure("B5", "  digest", None, "", db_kind, target="pending: no digest here"))
    for step in steps:
        figures.append(
            Figure(
                "B8",
                f"/metrics scrape over {step['incidents']:,} incidents (median of 30, in process)",
                round(step["scrape_seconds"] * 1e6, 1),
                "µs",
                db_kind,
                target="< 50 ms",
                met=step["scrape_seconds"] < 0.05,
                detail=step,
            )
        )
        figures.append(
            Figure(
                "B8",
                f"  its periodic refresh (METRICS_REFRESH_SECONDS) over {step['incidents']:,}",
                step["metrics_refresh_seconds"],
                "s",
                db_kind,
                target="(context)",
                detail=step,
            )
        )
    return figures


@contextlib.contextmanager
def _sqlite_kpis(work: Path) -> Iterator[str]:
    yield f"sqlite:///{work / 'kpis.db'}"


# report ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def table(figures: list[Figure]) -> str:
    rows = [("#", "figure", "db", "value", "floor", "ratio", "target", "met?")]
    for f in figures:
        rows.append(
            (
                f.id,
                f.figure,
                f.database,
                f"{_fmt(f.value)} {f.unit}",
                _fmt(f.floor),
                _fmt(f.ratio),
                f.target,
                _fmt(f.met) if f.met is not None else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(profile: Profile, out: Path | None, databases: list[str], kpi_databases: list[str]) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    commit = _git_commit()  # the code measured, not what a commit made during the run points to
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="pmb-bench-") as tmp:
        work = Path(tmp)
        floors = {"bolt": floor_bolt(profile, work), "pagerduty": floor_pagerduty(profile, work)}
        with sandbox_process(work) as sandbox:
            for db_kind in databases:
                figures += request_path(profile, work, sandbox, db_kind, floors)
                figures += webhook_phase(profile, work, sandbox, db_kind, floors)
                figures += prompt_phase(profile, work, sandbox, db_kind)
            for db_kind in databases:
                figures += scrape_phase(profile, work, sandbox, db_kind)
        for db_kind in databases:
            figures += storm_phase(profile, work, db_kind)
        for db_kind in kpi_databases:
            figures += kpi_phase(profile, work, db_kind)
        logs = {p.name: p.read_text()[-4000:] for p in work.glob("*.log") if p.stat().st_size}
    load_after = os.getloadavg()
    result = {
        "profile": profile.name,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "commit": commit,
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "floors": floors,
        "figures": [f.as_json() for f in figures],
        "log_tails": logs,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        text = json.dumps(result, indent=2) + "\n"
        (out / f"{stamp}.json").write_text(text)
        (out / "latest.json").write_text(text)
    print(table(figures))
    host = result["machine"]
    print(
        f"\nmachine: {host['nproc']} cores, {host['cpu']}, Python {host['python']}; "
        f"load average before {result['load_average_before']}, after {result['load_average_after']}; "
        f"{result['seconds']} s"
    )
    return result


def _git_commit() -> str | None:
    if shutil.which("git") is None:
        return None
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short phases: checks the harness runs, not the numbers"
    )
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of the bot's load phases here")
    parser.add_argument("--out", type=Path, help="where to write <timestamp>.json and latest.json")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    # A SIGTERM (a CI time-out, kill) unwinds the context managers, so no server is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    harness.PROFILE_DIR = args.profile
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    postgres = ["postgresql"] if os.environ.get("TEST_POSTGRES_URL") else []
    # --quick keeps CI under a minute: the server phases on SQLite only (PostgreSQL runs the same code
    # with another URL), the KPI phase on both (its bulk load differs: executemany vs COPY).
    run(profile, out, ["sqlite"] + ([] if args.quick else postgres), ["sqlite", *postgres])
    return 0


if __name__ == "__main__":
    sys.exit(main())
