"""The App Home tab: published when a person opens it, and again after they mark an item done there."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot import blocks
from bot.app import Runtime, runtime_of
from bot.clock import utcnow
from bot.db import read_scope
from bot.home import home_content


def publish_home(*, runtime: Runtime, client: WebClient, user_id: str) -> None:
    """Build `user_id`'s home view from the database now and publish it (views.publish)."""
    settings = runtime.settings
    with read_scope(runtime.engine) as session:
        content = home_content(
            session=session,
            user_id=user_id,
            now=utcnow(),
            tz=settings.tz,
            response_target_minutes=settings.response_target_minutes,
        )
    view = blocks.app_home(content, tz=settings.tz, target_minutes=settings.response_target_minutes)
    client.views_publish(user_id=user_id, view=view)


def handle_app_home_opened(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    # The same event fires for the Messages tab; only the Home tab has a view to publish.
    if event.get("tab") != "home":
        return
    publish_home(runtime=runtime_of(context), client=client, user_id=event["user"])


def register(app: App) -> None:
    app.event("app_home_opened")(handle_app_home_opened)
