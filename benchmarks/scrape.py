"""B8: `/metrics` scraped over HTTP from the bot (`python -m bot serve`) holding 10k / 100k / 1M incidents.

One database grows step by step with `kpi_bench`'s synthetic incidents (its bulk loader); at each step a
bot starts on it, its first metrics refresh is awaited (one scrape, untimed), then SCRAPES scrapes one after
the other on one keep-alive connection are timed by the load generator. A scrape hands out the exposition
the last periodic refresh rendered (bot/loop/metrics.py), so it should not grow with the table; the refresh
itself is B5's business (kpi_bench times it in process). The bot's clock is the real one, so its recent
windows may hold none of the synthetic year's incidents: that changes what the refresh computes, not what a
scrape costs.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import kpi_bench
from benchmarks.harness import Figure, Profile, bot_process, database, errors, loadgen
from bot.core.db import make_engine, upgrade

SCRAPES = 30


def scrape_phase(profile: Profile, work: Path, sandbox: dict[str, str], db_kind: str) -> list[Figure]:
    figures: list[Figure] = []
    with database(db_kind, work) as url:
        upgrade(url)
        engine = make_engine(url)
        have = 0
        try:
            for size in profile.scrape_sizes:
                kpi_bench.bulk_insert(engine, have + 1, size - have)
                have = size
                figures.append(_scrape(work, sandbox, url, db_kind, size))
        finally:
            engine.dispose()
    first, last = figures[0], figures[-1]
    if len(figures) > 1 and first.value and last.value is not None:
        growth = round(last.value / first.value, 2)
        figures.append(
            Figure(
                "B8",
                f"  growth {profile.scrape_sizes[0]:,} -> {profile.scrape_sizes[-1]:,} (p50 ratio)",
                growth,
                "",
                db_kind,
                target="flat (<= 2)",
                met=growth <= 2,
            )
        )
    return figures


def _scrape(work: Path, sandbox: dict[str, str], url: str, db_kind: str, size: int) -> Figure:
    with bot_process(work, sandbox, url, f"{db_kind}-b8-{size}") as bot:
        with urllib.request.urlopen(f"{bot.url}/metrics", timeout=60) as response:
            response.read()  # the first refresh, if the refresher has not finished it yet
        result: dict[str, Any] = loadgen(
            {
                "kind": "get",
                "host": "127.0.0.1",
                "port": int(bot.url.rsplit(":", 1)[1]),
                "path": "/metrics",
                "connections": 1,
                "max_requests": SCRAPES,
                "duration": 60,
            }
        )
    return Figure(
        "B8",
        f"/metrics scrape over HTTP, {size:,} incidents, p50 of {SCRAPES} (p99 in detail)",
        result["p50_ms"],
        "ms",
        db_kind,
        target="< 50 ms",
        met=errors(result) == 0 and result["p99_ms"] is not None and result["p99_ms"] < 50,
        detail=result,
    )
