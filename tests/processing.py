"""Waiting for the delivery processor: a webhook is answered once its delivery is stored, and processed
after (bot/runtime/processor.py), so a test that checks what a delivery changed waits for its processing
first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlmodel import Session, col, select

from bot.core.db import make_engine
from bot.core.models import InboundDelivery
from bot.domain.pagerduty import SOURCE


def wait_until_processed(
    database_url: str, *, event_ids: Iterable[str] | None = None, timeout: float = 10.0
) -> None:
    """Return once every stored PagerDuty delivery (or those of `event_ids`, which must all be stored)
    is processed; fail after `timeout` naming the deliveries still unprocessed and why."""
    wanted = set(event_ids) if event_ids is not None else None
    engine = make_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with Session(engine) as session:
                rows = session.exec(
                    select(InboundDelivery.delivery_id, InboundDelivery.processed_at, InboundDelivery.error)
                    .where(InboundDelivery.source == SOURCE)
                    .order_by(col(InboundDelivery.id))
                ).all()
            stored = {delivery_id for delivery_id, _, _ in rows}
            waiting = [
                (delivery_id, error)
                for delivery_id, processed_at, error in rows
                if processed_at is None and (wanted is None or delivery_id in wanted)
            ]
            missing = sorted(wanted - stored) if wanted is not None else []
            if not waiting and not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not processed after {timeout:g} s: {waiting[:10]} (not stored: {missing[:10]})"
                )
            time.sleep(0.02)
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], object], *, timeout: float = 10.0, message: str = "condition") -> None:
    """Poll `condition` until it is true; fail with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (after {timeout:g} s)")
        time.sleep(0.01)
