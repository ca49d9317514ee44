"""The digest's chart: incidents per day and mean time to resolve, over the last 8 weeks.

matplotlib's object API on the Agg canvas (no pyplot, no GUI backend, no global state), so it is safe on
the scheduler's thread. The series are returned alongside the PNG so tests check what was plotted.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.core.models import Incident


@dataclass
class ChartSeries:
    days: list[date]
    incidents: list[int]
    # Mean minutes to resolve of the incidents triggered that day (None: none resolved).
    mean_minutes_to_resolve: list[float | None]


def chart_series(*, session: Session, since: datetime, until: datetime, tz: ZoneInfo) -> ChartSeries:
    """Per local day in [since, until): incidents triggered, and their mean time to resolve in minutes."""
    rows = session.exec(
        select(Incident.triggered_at, Incident.seconds_to_resolve)
        .where(col(Incident.triggered_at) >= since, col(Incident.triggered_at) < until)
        .order_by(col(Incident.triggered_at))
    ).all()
    first, last = since.astimezone(tz).date(), (until - timedelta(microseconds=1)).astimezone(tz).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    counts = dict.fromkeys(days, 0)
    resolve: dict[date, list[int]] = {day: [] for day in days}
    for triggered_at, seconds in rows:
        day = triggered_at.astimezone(tz).date()
        counts[day] += 1
        if seconds is not None:
            resolve[day].append(seconds)
    return ChartSeries(
        days=days,
        incidents=[counts[day] for day in days],
        mean_minutes_to_resolve=[
            round(sum(values) / len(values) / 60, 1) if values else None for values in resolve.values()
        ],
    )


def render_chart(series: ChartSeries, *, target_minutes: int | None = None) -> bytes:
    """A PNG: bars of incidents per day, and a line of mean minutes to resolve on a second axis."""
    # matplotlib (with numpy) is imported here, once a week, not at start-up: it is ~40 MB of resident
    # memory and most of a second of import time for a server that draws one chart a week (B6).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    # matplotlib's stubs type x as numbers; dates are converted by its unit registry at run time.
    ax.bar(series.days, series.incidents, color="#4a90d9", label="Incidents per day")  # type: ignore[arg-type]
    ax.set_ylabel("Incidents")
    locator = ax.yaxis.get_major_locator()
    if not isinstance(locator, MaxNLocator):  # a linear axis's default, AutoLocator, is one
        raise TypeError(f"expected the y axis to have a MaxNLocator, got {type(locator).__name__}")
    locator.set_params(integer=True)
    minutes = figure.axes[0].twinx()
    points = [
        (d, m) for d, m in zip(series.days, series.mean_minutes_to_resolve, strict=True) if m is not None
    ]
    if points:
        minutes.plot(
            [d for d, _ in points],  # type: ignore[arg-type]  # dates: see ax.bar above
            [m for _, m in points],
            color="#d0021b",
            marker="o",
            linewidth=1.5,
        )
    if target_minutes:
        minutes.axhline(target_minutes, color="#d0021b", linestyle=":", linewidth=1)
    minutes.set_ylabel("Mean minutes to resolve")
    minutes.set_ylim(bottom=0)
    ax.set_title(f"Incidents and time to resolve, {series.days[0]:%d %b} to {series.days[-1]:%d %b %Y}")
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
