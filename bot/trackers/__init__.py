"""Action items in the team's tracker (Jira Cloud or GitHub Issues): the `Tracker` interface, its two
implementations over one small HTTP client, and the enqueue side of tracker work (`links.py`).

Sits beside bot/slack: it imports bot/core and bot/domain only. The worker that delivers the work is
bot/runtime/tracker_worker.py; the webhooks that bring changes back are bot/runtime/tracker_routes.py.
"""
